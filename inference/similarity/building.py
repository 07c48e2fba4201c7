"""Executor of an index job: build the project's index in its current space, or bring an
existing one up to date (patches added since are added, deleted ones removed)."""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.db.models import QuerySet

from annotations import lifecycle
from annotations.models import Patch
from inference.models import EmbeddingSpace
from inference.similarity import faiss_index, store
from inference.similarity.models import SimilarityIndex, SimilarityJob
from inference.similarity.vectors import patch_vectors, project_space

PROBE_QUERIES = 50  # patches whose exact top 10 calibrate an IVF index's nprobe


def _delete_files(names: list[str], keep: str) -> None:
    for name in names:
        if name != keep:
            store.delete(name)


class NothingToIndex(RuntimeError):
    """The project has no embeddings yet: predict or train first."""


def empty_index(space: EmbeddingSpace, patches: QuerySet[Patch], kind: str,
                size: int) -> faiss_index.FaissIndex:
    """An empty exact index, or an IVF one trained on a random sample of the patches."""
    if kind == faiss_index.KIND:
        return faiss_index.empty(space.embed_dim)
    ids = list(patches.values_list("id", flat=True))
    rng = np.random.default_rng(0)
    sample = rng.choice(ids, size=min(len(ids), faiss_index.TRAIN_SAMPLE), replace=False)
    vectors = [v for _, v, _ in patch_vectors(space, patches.filter(pk__in=sample.tolist()))]
    return faiss_index.ivf(space.embed_dim, size, np.concatenate(vectors))


def build_index(job: SimilarityJob) -> SimilarityIndex:
    project = job.project
    space = job.space or project_space(project)
    if space is None:
        raise NothingToIndex(f"project {project.slug!r} has no embeddings yet: run predict "
                             "or train a head first (they embed every tile)")
    SimilarityJob.objects.filter(pk=job.pk).update(space=space)
    current = SimilarityIndex.objects.filter(project=project, space=space).first()
    patches = Patch.objects.filter(project=project)
    wanted = set(patches.values_list("id", flat=True))
    index, removed = None, 0
    kind = faiss_index.kind_for(len(wanted))
    if current is not None and current.kind == kind:
        try:
            index = store.load_copy(current)  # updated in place: never the shared one
        except (OSError, RuntimeError):  # the file is gone or damaged: build afresh
            index = None
    if index is None:  # first build, damaged file, or the project crossed EXACT_LIMIT
        index = empty_index(space, patches, kind, len(wanted))
        present: set[int] = set()
    else:
        present = set(faiss_index.ids_of(index).tolist())
        gone = present - wanted
        removed = faiss_index.remove(index, gone)
        present -= gone
    missing = wanted - present
    lifecycle.start_stage(job, "indexing", total=len(missing), unit="patches")
    not_embedded = 0
    # A first build walks every patch; an update only the ones not in the index yet.
    todo = patches.filter(pk__in=sorted(missing)) if present else patches
    for ids, vectors, left_out in patch_vectors(space, todo):
        keep = np.array([i not in present for i in ids.tolist()], dtype=bool)
        faiss_index.add(index, ids[keep], vectors[keep])
        not_embedded += left_out
        lifecycle.advance(job, by=int(keep.sum()) + left_out)
    calibration = {}
    if kind == faiss_index.KIND_IVF:  # how many lists these patches need for Recall@10 0.99
        probe = np.random.default_rng(1).choice(faiss_index.ids_of(index), size=min(
            index.ntotal, PROBE_QUERIES), replace=False)
        nprobe, recall = faiss_index.calibrate(index, faiss_index.vectors_of(index, probe))
        calibration = {"nprobe": nprobe, "recall@10": round(recall, 4)}
    name = store.save(project, space, index)
    with transaction.atomic():
        old = [r.file for r in SimilarityIndex.objects.select_for_update().filter(
            project=project)]
        row, _ = SimilarityIndex.objects.update_or_create(
            project=project, space=space, defaults={
                "file": name, "kind": kind, "size": index.ntotal,
                "dim": space.embed_dim, "max_patch_id": max(wanted, default=0),
                "not_embedded": not_embedded})
        # One index per project: one of a space it no longer uses goes with its file.
        SimilarityIndex.objects.filter(project=project).exclude(pk=row.pk).delete()
        transaction.on_commit(lambda: _delete_files(old, keep=name))
    lifecycle.succeed(job, summary={"space": str(space), "size": index.ntotal,
                                    "added": index.ntotal - len(present),
                                    "removed": removed, "not_embedded": not_embedded,
                                    **calibration})
    return row
