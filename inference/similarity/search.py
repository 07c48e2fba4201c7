""""More like this": seed patches in, the most similar patches of the project out, with the
patch filters of the browser (slide, split, status, label). Runs in the web tier (faiss and
numpy, no torch) on the index the last index job stored."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from django.db.models import Max, QuerySet

from annotations.models import Patch, Project
from inference.similarity import faiss_index, store
from inference.similarity.models import SimilarityIndex
from inference.similarity.vectors import project_space, vectors_for


class IndexNotReady(LookupError):
    """No index for the project's current space yet (a job builds it)."""


class UnknownSeed(ValueError):
    """A seed is not a patch of the project, or has no embedding."""


@dataclass(frozen=True)
class SimilarFilters:
    slide: int | None = None
    split: str | None = None
    status: str | None = None
    label: int | None = None  # current label; 0 = unlabelled patches only


@dataclass(frozen=True)
class Similar:
    patch_id: int
    similarity: float


def current_index(project: Project) -> SimilarityIndex | None:
    """The index of the project's current embedding space (None: none built yet)."""
    space = project_space(project)
    if space is None:
        return None
    return (SimilarityIndex.objects.select_related("space")
            .filter(project=project, space=space).first())


def is_stale(project: Project, row: SimilarityIndex) -> bool:
    """Patches arrived since the index was built (an update job adds them)."""
    newest = Patch.objects.filter(project=project).aggregate(m=Max("id"))["m"] or 0
    return newest > row.max_patch_id


def filtered(project: Project, filters: SimilarFilters) -> QuerySet[Patch] | None:
    """The patches the filters allow (None: no filter, search everything)."""
    patches = Patch.objects.filter(project=project)
    if filters.slide:
        patches = patches.filter(slide_id=filters.slide)
    if filters.split is not None:
        patches = patches.filter(split=filters.split)
    if filters.status:
        patches = patches.filter(status=filters.status)
    if filters.label == 0:
        patches = patches.filter(current_label__isnull=True)
    elif filters.label:
        patches = patches.filter(current_label_id=filters.label)
    return None if filters == SimilarFilters() else patches


def open_index(row: SimilarityIndex) -> faiss_index.FaissIndex:
    """The row's index; a file gone from storage (media lost, restored from an older backup)
    is an index not ready yet: the caller queues a rebuild."""
    try:
        return store.load(row)
    except (OSError, RuntimeError) as exc:
        raise IndexNotReady(f"the similarity index file {row.file} cannot be read ({exc})"
                            ) from exc


def seed_query(project: Project, row: SimilarityIndex, seeds: list[int]) -> np.ndarray:
    """The normalised mean of the seeds' normalised vectors: one query for several seeds."""
    index = open_index(row)
    known = set(Patch.objects.filter(project=project, pk__in=seeds)
                .values_list("id", flat=True))
    if unknown := [s for s in seeds if s not in known]:
        raise UnknownSeed(f"no patch {unknown[0]} in project {project.slug}")
    vectors = []
    for seed in seeds:
        try:
            vectors.append(faiss_index.vectors_of(index, [seed])[0])
        except KeyError:  # added after the index was built: read its embedding directly
            found = vectors_for(row.space, [seed])
            if seed not in found:
                raise UnknownSeed(f"patch {seed} has no embedding in {row.space} yet") from None
            vectors.append(faiss_index.normalised(found[seed][None])[0])
    return faiss_index.normalised(np.mean(faiss_index.normalised(np.stack(vectors)), axis=0,
                                          keepdims=True))


def more_like_this(project: Project, seeds: list[int], k: int = 24,
                   filters: SimilarFilters = SimilarFilters()) -> list[Similar]:
    """The ``k`` patches most similar to the seeds (a seed is its own best match), best
    first, among those the filters allow."""
    row = current_index(project)
    if row is None:
        raise IndexNotReady(f"project {project.slug!r} has no similarity index yet")
    query = seed_query(project, row, seeds)
    allowed = filtered(project, filters)
    ids = (None if allowed is None
           else np.fromiter(allowed.values_list("id", flat=True), dtype=np.int64))
    if ids is not None and not len(ids):
        return []
    scores, found = faiss_index.search(open_index(row), query, k, allowed=ids)
    results = [Similar(int(i), round(float(s), 4))
               for s, i in zip(scores[0], found[0], strict=True) if i >= 0]
    return seeds_first(results, set(seeds))


class NoPrototype(LookupError):
    """The class has no prototype in the current space (run the prototypes job)."""


def by_prototype(project: Project, class_id: int, k: int = 24, atypical: bool = False,
                 filters: SimilarFilters = SimilarFilters()) -> list[Similar]:
    """The class's patches ordered by cosine to its prototype: the most typical first, or
    the most atypical (searching with the negated prototype finds the least similar)."""
    from inference.similarity.prototypes import current

    row = current_index(project)
    if row is None:
        raise IndexNotReady(f"project {project.slug!r} has no similarity index yet")
    prototypes = current(project)
    if prototypes is None or class_id not in prototypes.class_ids:
        raise NoPrototype(f"class {class_id} has no prototype yet: compute the prototypes")
    matrix = np.frombuffer(bytes(prototypes.matrix), dtype=np.float32).reshape(
        len(prototypes.class_ids), -1)
    query = matrix[prototypes.class_ids.index(class_id)][None]
    allowed = filtered(project, replace(filters, label=class_id))
    assert allowed is not None
    ids = np.fromiter(allowed.values_list("id", flat=True), dtype=np.int64)
    if not len(ids):
        return []
    sign = -1.0 if atypical else 1.0
    scores, found = faiss_index.search(open_index(row), sign * query, k, allowed=ids)
    return [Similar(int(i), round(sign * float(s), 4))
            for s, i in zip(scores[0], found[0], strict=True) if i >= 0]


TIE = 2e-3  # fp16 storage rounds a cosine of 1 to within this


def seeds_first(results: list[Similar], seeds: set[int]) -> list[Similar]:
    """Seeds tied with the best result go first: an identical patch elsewhere (the same
    tissue on another slide) must not hide that the seed is its own best match."""
    if not results:
        return results
    top = results[0].similarity
    tied = [r for r in results if r.patch_id in seeds and r.similarity >= top - TIE]
    return tied + [r for r in results if r not in tied]
