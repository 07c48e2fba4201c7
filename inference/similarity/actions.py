"""Starting similarity jobs: check the role, record the job, enqueue it on commit; one live
job of a kind per project (a second one is refused, naming the first)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import transaction

from annotations import lifecycle
from annotations.models import LabelClass, Patch, Project
from annotations.permissions import Act, require
from inference.similarity import tasks
from inference.similarity.candidates import default_seeds
from inference.similarity.models import SimilarityJob

if TYPE_CHECKING:
    from annotations.permissions import AnyUser

Kind = SimilarityJob.Kind
MAX_K = 1000


class SimilarityJobError(ValueError):
    """The job cannot start as asked (one of its kind is live, unknown class or seeds)."""


def _queue(project: Project, kind: str, options: dict[str, Any],
           user: AnyUser | None) -> SimilarityJob:
    with transaction.atomic():
        if (twin := lifecycle.live_twin(SimilarityJob, project, kind=kind)) is not None:
            raise SimilarityJobError(f"{kind} job {twin.pk} is already {twin.state}: wait "
                                     "for it, or cancel it first")
        job = SimilarityJob.objects.create(
            project=project, kind=kind, options=options,
            created_by=user if user is not None and user.is_authenticated else None)
        transaction.on_commit(lambda: tasks.run_similarity_job.delay(job.pk))
    return job


def start_index(project: Project, user: AnyUser | None = None, *,
                check: bool = True) -> SimilarityJob:
    """Build the index of the project's current space, or bring it up to date."""
    if check:
        require(user, project, Act.RUN_MODELS)
    return _queue(project, Kind.INDEX, {}, user)


def ensure_index(project: Project) -> SimilarityJob | None:
    """Queue an index job unless one is live (a query found the index missing or behind):
    reading needs no admin, the index follows the data."""
    try:
        return _queue(project, Kind.INDEX, {"reason": "missing or behind"}, None)
    except SimilarityJobError:
        return None


def start_candidates(project: Project, label_id: int, *, seeds: list[int] | None = None,
                     k: int = 50, user: AnyUser | None = None,
                     check: bool = True) -> SimilarityJob:
    """Propose the top-``k`` unlabelled patches most like ``seeds`` (default: all settled
    patches of the class) as that class. Reviewers may ask: a proposal changes no label."""
    if check:
        require(user, project, Act.REVIEW)
    if not LabelClass.objects.filter(project=project, pk=label_id).exists():
        raise SimilarityJobError(f"no class {label_id} in project {project.slug}")
    if not 1 <= k <= MAX_K:
        raise SimilarityJobError(f"k must be between 1 and {MAX_K}")
    if not seeds and not default_seeds(project, label_id):
        raise SimilarityJobError("the class has no settled patches to seed from yet: choose "
                                 "seed patches (e.g. from a patch's \"more like this\")")
    if seeds:
        found = set(Patch.objects.filter(project=project, pk__in=seeds)
                    .values_list("id", flat=True))
        if missing := [s for s in seeds if s not in found]:
            raise SimilarityJobError(f"no patch {missing[0]} in project {project.slug}")
    return _queue(project, Kind.CANDIDATES, {"label": label_id, "seeds": seeds or [], "k": k},
                  user)


def start_prototypes(project: Project, user: AnyUser | None = None, *,
                     check: bool = True) -> SimilarityJob:
    """Compute the class prototypes, typical/atypical patches and few-shot figures."""
    if check:
        require(user, project, Act.RUN_MODELS)
    return _queue(project, Kind.PROTOTYPES, {}, user)


def register_job_type() -> None:
    lifecycle.register_job_type(SimilarityJob.job_type, SimilarityJob,
                                tasks.run_similarity_job.delay)
