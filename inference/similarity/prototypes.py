"""Class prototypes: the mean centre embedding of each class's settled patches, a
nearest-prototype second opinion for the review page, each class's most typical and
atypical patches, and the few-shot figures, all computed by one job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import QuerySet

from annotations import lifecycle
from annotations.models import LabelClass, Patch, PatchStatus, Project
from annotations.prepared import columns, first_instances
from inference.models import EmbeddingSpace
from inference.similarity import fewshot
from inference.similarity.building import NothingToIndex
from inference.similarity.faiss_index import normalised
from inference.similarity.models import ClassPrototypes, SimilarityJob
from inference.similarity.vectors import patch_vectors, project_space, vectors_for

SETTLED = (PatchStatus.CONFIRMED, PatchStatus.CORRECTED)
USABLE = (PatchStatus.UNREVIEWED, *SETTLED)  # not excluded, unsure or disputed
ORDERED = 8  # typical and atypical patches kept per class for the project page
RECALL_QUERIES = 2000  # test patches sampled as retrieval queries (exact search, numpy)


@dataclass
class Labelled:
    """Labelled, usable patches of a project as arrays, in patch id order."""

    ids: np.ndarray
    vectors: np.ndarray
    labels: np.ndarray
    settled: np.ndarray
    split: np.ndarray


def labelled(project: Project, space: EmbeddingSpace) -> Labelled:
    patches = Patch.objects.filter(project=project, current_label__isnull=False,
                                   status__in=USABLE)
    info = {pid: (label, status in SETTLED, split) for pid, label, status, split in
            patches.values_list("id", "current_label_id", "status", "split")}
    ids, vectors = [], []
    for batch_ids, batch, _ in patch_vectors(space, patches):
        ids.append(batch_ids)
        vectors.append(batch)
    all_ids = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    rows = [info[i] for i in all_ids.tolist()]
    return Labelled(
        all_ids,
        np.concatenate(vectors) if vectors else np.zeros((0, space.embed_dim), np.float32),
        np.array([r[0] for r in rows], dtype=np.int64),
        np.array([r[1] for r in rows], dtype=bool),
        np.array([r[2] for r in rows], dtype=object))


def compute(job: SimilarityJob) -> ClassPrototypes:
    """Prototypes from settled patches (a class with none settled yet uses its labelled
    ones, and says so), their typical/atypical patches and the few-shot figures."""
    project = job.project
    space = job.space or project_space(project)
    if space is None:
        raise NothingToIndex(f"project {project.slug!r} has no embeddings yet: run predict "
                             "or train a head first")
    lifecycle.start_stage(job, "prototypes", total=None, unit="patches")
    data = labelled(project, space)
    classes = sorted(set(data.labels.tolist()))
    protos, counts, basis, ordering = [], {}, {}, {}
    for c in classes:
        mine = data.labels == c
        use = mine & data.settled if (mine & data.settled).any() else mine
        basis[str(c)] = "settled" if (mine & data.settled).any() else "labelled"
        counts[str(c)] = int(use.sum())
        proto = fewshot.prototypes(data.vectors[use], np.full(int(use.sum()), c),
                                   np.array([c]))[0]
        protos.append(proto)
        sims = normalised(data.vectors[mine]) @ proto
        order = np.argsort(-sims)
        ids = data.ids[mine]
        ordering[str(c)] = {
            "typical": [[int(ids[i]), round(float(sims[i]), 4)] for i in order[:ORDERED]],
            "atypical": [[int(ids[i]), round(float(sims[i]), 4)]
                         for i in order[::-1][:ORDERED]]}
    matrix = np.stack(protos).astype(np.float32) if protos else np.zeros((0, space.embed_dim),
                                                                          np.float32)
    figures = evaluate(data)
    figures["ordering"] = ordering
    figures["basis"] = basis
    row, _ = ClassPrototypes.objects.update_or_create(
        project=project, space=space, defaults={
            "class_ids": classes, "counts": counts, "matrix": matrix.tobytes(),
            "basis": "settled" if all(b == "settled" for b in basis.values()) else "mixed",
            "fewshot": figures})
    ClassPrototypes.objects.filter(project=project).exclude(pk=row.pk).delete()
    lifecycle.succeed(job, summary={k: v for k, v in figures.items()
                                    if k not in ("ordering", "basis")})
    return row


def evaluate(data: Labelled, seed: int = 0) -> dict[str, Any]:
    """Few-shot (shots from the train split) and Recall@K (train split as the database) on
    the test split's labelled patches."""
    train = data.split == "train"
    test = data.split == "test"
    if not train.any() or not test.any():
        return {"note": "needs labelled patches in both the train and the test split"}
    figures = fewshot.few_shot(data.vectors[train], data.labels[train], data.vectors[test],
                               data.labels[test], seed=seed)
    queries = np.flatnonzero(test)
    if len(queries) > RECALL_QUERIES:
        queries = np.sort(np.random.default_rng(seed).choice(queries, RECALL_QUERIES,
                                                             replace=False))
    figures["retrieval"] = fewshot.recall_at_k(data.vectors[train], data.labels[train],
                                               data.vectors[queries], data.labels[queries])
    figures["retrieval_queries"] = len(queries)
    return figures


def current(project: Project) -> ClassPrototypes | None:
    """The prototypes of the project's space, by a statement compiled once per space (the
    review API shows the nearest one with every item it hands out)."""
    space = project_space(project)
    if space is None:
        return None

    def build(project: int) -> QuerySet[ClassPrototypes, tuple[Any, ...]]:
        return (ClassPrototypes.objects.filter(project_id=project, space_id=space.pk)
                .values_list(*columns(ClassPrototypes))[:1])

    found = first_instances(("prototypes", space.pk), build, (ClassPrototypes,),
                            project=project.pk)
    if found is None:
        return None
    row: ClassPrototypes = found[0]
    row.space = space
    return row


def nearest_prototypes(project: Project, patch_ids: list[int]) -> dict[int, dict[str, Any]]:
    """{patch id: {"name", "similarity", "margin"}}: the class whose prototype is nearest
    to the patch, how near, and by how much it beats the runner-up (empty without
    prototypes)."""
    row = current(project)
    if row is None or not row.class_ids:
        return {}
    protos = np.frombuffer(bytes(row.matrix), dtype=np.float32).reshape(len(row.class_ids), -1)
    found = vectors_for(row.space, patch_ids)
    if not found:
        return {}
    names = dict(LabelClass.objects.filter(pk__in=row.class_ids).values_list("id", "name"))
    ids = list(found)
    scores = normalised(np.stack([found[i] for i in ids])) @ protos.T
    out = {}
    for pid, row_scores in zip(ids, scores, strict=True):
        order = np.argsort(-row_scores)
        best = int(order[0])
        margin = float(row_scores[best] - row_scores[order[1]]) if len(order) > 1 else None
        out[pid] = {"name": names.get(row.class_ids[best], ""),
                    "similarity": round(float(row_scores[best]), 4),
                    "margin": None if margin is None else round(margin, 4)}
    return out
