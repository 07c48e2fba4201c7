"""Celery steps of an inference job: ``embed_step`` on the ``gpu`` queue, the rest on default.

Each task takes only a job id, re-reads the job, runs one executor step under the shared
life cycle and queues the step the executor asks for; see :mod:`inference.jobs` for why a
redelivered or duplicated message is harmless.
"""

from __future__ import annotations

from collections.abc import Callable

from annotations import lifecycle
from annotations.tasks import job_task
from inference.models import InferenceJob

_RELATED = ("space", "model_version", "model_version__space", "created_by")


def _step(job_id: int, work: Callable[[InferenceJob], object]) -> None:
    job = lifecycle.load(InferenceJob, job_id, *_RELATED)
    if job is not None:
        lifecycle.run(job, work, exclusive=False)  # steps of one job may run side by side


@job_task
def embed_step(job_id: int) -> None:
    from inference import jobs

    def work(job: InferenceJob) -> None:
        outcome = jobs.embed_step(job)
        if outcome == "embed":
            embed_step.delay(job_id)
        elif outcome == "next":
            trains = job.kind in (InferenceJob.Kind.TRAIN, InferenceJob.Kind.ROUND)
            (train_step if trains else predict_step).delay(job_id)

    _step(job_id, work)


@job_task
def predict_step(job_id: int) -> None:
    from inference import jobs

    def work(job: InferenceJob) -> None:
        if jobs.predict_step(job) == "predict":
            predict_step.delay(job_id)

    _step(job_id, work)


@job_task
def train_step(job_id: int) -> None:
    from inference import jobs

    _step(job_id, jobs.train_step)
