"""Celery steps of an inference job: ``embed_step`` on the ``gpu`` queue, the rest on default.

Each task takes only a job id and re-reads the job; see :mod:`inference.jobs` for why a
redelivered or duplicated message is harmless.
"""

from __future__ import annotations

import traceback

from celery import shared_task

from inference import jobs
from inference.models import InferenceJob


def _load(job_id: int) -> InferenceJob | None:
    job = (InferenceJob.objects.select_related("project", "space", "model_version",
                                               "model_version__space", "created_by")
           .filter(pk=job_id).first())
    if job is None or not job.is_active:
        return None
    return job


def _guarded(job_id: int, step) -> None:
    job = _load(job_id)
    if job is None:
        return
    try:
        step(job)
    except Exception as exc:  # a job never stays "running" after an error: record it
        jobs.fail(job_id, f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc(limit=8)}")
        raise


@shared_task(acks_late=True, ignore_result=True)
def embed_step(job_id: int) -> None:
    def step(job: InferenceJob) -> None:
        outcome = jobs.embed_step(job)
        if outcome == "embed":
            embed_step.delay(job_id)
        elif outcome == "next":
            if job.kind == InferenceJob.Kind.TRAIN:
                train_step.delay(job_id)
            else:
                predict_step.delay(job_id)

    _guarded(job_id, step)


@shared_task(acks_late=True, ignore_result=True)
def predict_step(job_id: int) -> None:
    def step(job: InferenceJob) -> None:
        if jobs.predict_step(job) == "predict":
            predict_step.delay(job_id)

    _guarded(job_id, step)


@shared_task(acks_late=True, ignore_result=True)
def train_step(job_id: int) -> None:
    _guarded(job_id, jobs.train_step)
