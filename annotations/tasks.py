"""Celery tasks: an id in, re-fetch, run the executor under the job life cycle. No logic.

A redelivered message (its worker died) finds the job stalled and takes it over; a
duplicate finds it running with a live heartbeat and does nothing (see
:func:`annotations.lifecycle.claim`).
"""

from celery import shared_task

from annotations import lifecycle
from annotations.models import ExportJob, ImportJob


@shared_task(acks_late=True, ignore_result=True)
def run_import_job(job_id: int) -> None:
    from annotations.importing.jobs import execute_import_job

    if (job := lifecycle.load(ImportJob, job_id)) is not None:
        lifecycle.run(job, execute_import_job)


@shared_task(acks_late=True, ignore_result=True)
def run_export_job(job_id: int) -> None:
    from annotations.exporting.jobs import execute_export_job

    if (job := lifecycle.load(ExportJob, job_id)) is not None:
        lifecycle.run(job, execute_export_job)
