"""The project's active model version, read once per request where asked to.

Its own module because the similarity modules need it too, and :mod:`inference.queries`
(which re-exports it) reaches them: importing queries from there would be a cycle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from annotations.prepared import columns, first_instances
from inference.models import EmbeddingSpace, ModelVersion

if TYPE_CHECKING:
    from django.db.models import QuerySet

    from annotations.models import Project


# {project id: active version} while a one_active_version() block runs (per thread).
_remembered: ContextVar[dict[int, ModelVersion | None] | None] = ContextVar(
    "active_versions", default=None)


@contextmanager
def one_active_version() -> Iterator[None]:
    """Within the block, :func:`active_version` reads each project's version once: one
    request's queue, lease and item steps agree on one version (an activation in between
    cannot mix two) and do not each pay for the query. For one request, not longer."""
    token = _remembered.set({})
    try:
        yield
    finally:
        _remembered.reset(token)


def active_version(project: Project) -> ModelVersion | None:
    """The version the queues and the review page use (None before any model exists)."""
    memo = _remembered.get()
    if memo is not None and project.pk in memo:
        return memo[project.pk]
    version = _active_version(project.pk)
    if memo is not None:
        memo[project.pk] = version
    return version


def _active_version(project_id: int) -> ModelVersion | None:
    """The project's active version with its space, by a statement compiled once (the
    review API asks on every call; see :mod:`annotations.prepared`)."""
    def build(project: int) -> QuerySet[ModelVersion, tuple[Any, ...]]:
        return (ModelVersion.objects.filter(project_id=project, is_active=True)
                .values_list(*columns(ModelVersion), *columns(EmbeddingSpace, "space__"))[:1])

    found = first_instances("active_version", build, (ModelVersion, EmbeddingSpace),
                            project=project_id)
    if found is None:
        return None
    version: ModelVersion = found[0]
    version.space = found[1]
    return version
