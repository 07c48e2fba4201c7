"""The Celery task of similarity jobs: an id in, re-fetch, run the executor (see
:mod:`annotations.tasks` for why a redelivered message is harmless)."""

from __future__ import annotations

from annotations import lifecycle
from annotations.tasks import job_task
from inference.similarity.models import SimilarityJob


@job_task
def run_similarity_job(job_id: int) -> None:
    from inference.similarity.jobs import execute

    if (job := lifecycle.load(SimilarityJob, job_id, "space")) is not None:
        lifecycle.run(job, execute)
