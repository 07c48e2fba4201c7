"""Executor of similarity jobs: one function per kind (this module never imports tasks)."""

from __future__ import annotations

from inference.similarity import building, candidates, prototypes
from inference.similarity.models import SimilarityJob


def execute(job: SimilarityJob) -> None:
    Kind = SimilarityJob.Kind
    if job.kind == Kind.INDEX:
        building.build_index(job)
    elif job.kind == Kind.CANDIDATES:
        candidates.propose(job)
    elif job.kind == Kind.PROTOTYPES:
        prototypes.compute(job)
    else:
        raise ValueError(f"unknown similarity job kind {job.kind!r}")
