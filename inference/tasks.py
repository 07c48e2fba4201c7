"""Celery steps of an inference job: the embedding steps on the ``gpu`` queue, the rest on
default.

Each task takes only a job id, re-reads the job, runs one executor step under the shared
life cycle and queues the step the executor asks for; see :mod:`inference.jobs` for why a
redelivered or duplicated message is harmless.

Embedding is shared by several GPU workers (on one host or many): ``embed_step`` is the
entry (a job's start or resume). When one step was not enough, it queues up to
``SPIDER_EMBED_PARALLEL`` chains of ``embed_chain`` messages, each re-queued while tiles
remain, so that many idle GPU workers take part; the chunk claims (``SKIP LOCKED``, see
:mod:`inference.embedding`) keep them on disjoint tiles. A chain whose job has moved past
embedding (another chain finished it) ends without touching the job.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings

from annotations import lifecycle
from annotations.tasks import job_task
from inference.models import InferenceJob

_RELATED = ("space", "model_version", "model_version__space", "created_by")


def _step(job_id: int, work: Callable[[InferenceJob], object]) -> None:
    job = lifecycle.load(InferenceJob, job_id, *_RELATED)
    if job is not None:
        lifecycle.run(job, work, exclusive=False)  # steps of one job may run side by side


def _embed(job_id: int, *, entry: bool) -> None:
    from inference import jobs

    def work(job: InferenceJob) -> None:
        if not entry and job.stage not in ("", InferenceJob.Stage.EMBEDDING):
            return  # a chain left over after another finished embedding: the job moved on
        outcome = jobs.embed_step(job)
        if outcome == "embed":
            extra = settings.SPIDER_EMBED_PARALLEL - 1 if entry else 0
            for _ in range(1 + extra):  # this chain's next step, and any more chains
                embed_chain.delay(job_id)
        elif outcome == "next":
            trains = job.kind in (InferenceJob.Kind.TRAIN, InferenceJob.Kind.ROUND)
            (train_step if trains else predict_step).delay(job_id)

    _step(job_id, work)


@job_task
def embed_step(job_id: int) -> None:
    """A job's first embedding step (or its resume): fans out when there is more to do."""
    _embed(job_id, entry=True)


@job_task
def embed_chain(job_id: int) -> None:
    """One more embedding step of a chain that ``embed_step`` started."""
    _embed(job_id, entry=False)


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
