"""Celery tasks: an id in, re-fetch, run the executor under the job life cycle. No logic.

A redelivered message (its worker died) finds the job stalled and takes it over; a
duplicate finds it running with a live heartbeat and does nothing (see
:func:`annotations.lifecycle.claim`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, cast

from celery import shared_task

from annotations import lifecycle
from annotations.models import ExportJob, ImportJob


class JobTask(Protocol):
    """A Celery task that takes a job id, as far as callers use it (celery ships no types)."""

    def __call__(self, job_id: int) -> None: ...

    def delay(self, job_id: int) -> object: ...


def job_task(func: Callable[[int], None]) -> JobTask:
    """``shared_task`` for a job's task: acknowledged once done, so a message whose worker
    died is redelivered (and the job taken over); the job row, not a result, holds the
    outcome."""
    return cast(JobTask, shared_task(acks_late=True, ignore_result=True)(func))


@job_task
def run_import_job(job_id: int) -> None:
    from annotations.importing.jobs import execute_import_job

    if (job := lifecycle.load(ImportJob, job_id)) is not None:
        lifecycle.run(job, execute_import_job)


@job_task
def run_export_job(job_id: int) -> None:
    from annotations.exporting.jobs import execute_export_job

    if (job := lifecycle.load(ExportJob, job_id)) is not None:
        lifecycle.run(job, execute_export_job)
