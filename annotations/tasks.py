"""Celery tasks: thin wrappers that take ids, re-fetch, and call the importing entry points."""

from celery import shared_task

from annotations.models import ImportJob


@shared_task(acks_late=True, ignore_result=True)
def run_import_job(job_id: int) -> None:
    """Run a queued import. Imports are idempotent, so a job redelivered after its worker died
    (still ``running``) simply runs again and adds only what is missing."""
    from annotations.importing.jobs import execute_import_job

    job = ImportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
        return
    execute_import_job(job)


@shared_task(acks_late=True, ignore_result=True)
def run_export_job(job_id: int) -> None:
    """Run a queued export. It writes into a fresh temporary folder, so a job redelivered after
    its worker died simply runs again from the start."""
    from annotations.exporting import execute_export_job
    from annotations.models import ExportJob

    job = ExportJob.objects.select_related("project").filter(pk=job_id).first()
    if job is None or job.status in (ExportJob.Status.SUCCEEDED, ExportJob.Status.FAILED):
        return
    execute_export_job(job)
