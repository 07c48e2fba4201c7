"""Patch predictions: run a version's head over cached embeddings and store queue scores.

Like embedding, prediction claims patches with ``SKIP LOCKED`` and stores each chunk in the
transaction that claimed it; rows are upserted on (model version, patch), so a patch has
exactly one prediction per version however often a step is retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet
from torch import nn

from annotations.models import LabelClass, Patch
from inference import queue_scores
from inference.confident_learning import label_quality
from inference.embedding import grid_embeddings, inference_device
from inference.modeling import predict_probs, score_patches
from inference.models import ModelVersion, Prediction

_SCORE_FIELDS = ["probabilities", "predicted", "confidence", "margin", "entropy",
                 "scored_label", "label_quality", "disagree", "out_of_fold", "created_at"]


def unpredicted_patches(version: ModelVersion) -> QuerySet[Patch]:
    done = Prediction.objects.filter(model_version=version, patch=OuterRef("pk"))
    return Patch.objects.filter(project_id=version.project_id).filter(~Exists(done))


def class_ids(version: ModelVersion) -> list[int]:
    """LabelClass ids in the head's output order (names matched exactly at registration)."""
    by_name = dict(LabelClass.objects.filter(project_id=version.project_id)
                   .values_list("name", "id"))
    return [by_name[name] for name in version.class_names]


def store_predictions(
    version: ModelVersion,
    patch_ids: Sequence[int],
    label_ids: Sequence[int | None],
    probs: np.ndarray,
    *,
    out_of_fold: bool | np.ndarray = False,
) -> None:
    """Upsert predictions with the scores the queues sort on, for the given current labels."""
    ids = class_ids(version)
    position = {class_id: i for i, class_id in enumerate(ids)}
    labels = np.array([position.get(label, -1) if label is not None else -1
                       for label in label_ids], dtype=np.int64)
    scores = score_patches(probs, labels)
    quality = np.full(len(labels), np.nan)
    labelled_rows = labels >= 0
    if labelled_rows.any():  # cleanlab's scores: the same measures as score_patches'
        quality[labelled_rows] = label_quality(labels[labelled_rows], probs[labelled_rows],
                                               settings.SPIDER_LABEL_QUALITY)
    oof = np.broadcast_to(np.asarray(out_of_fold, dtype=bool), (len(patch_ids),))
    rows = []
    for i, patch_id in enumerate(patch_ids):
        labelled = labels[i] >= 0
        rows.append(Prediction(
            model_version=version,
            patch_id=patch_id,
            probabilities=[round(float(p), 6) for p in probs[i]],
            predicted_id=ids[int(scores.predicted[i])],
            confidence=float(scores.confidence[i]),
            margin=float(scores.margin[i]),
            entropy=float(scores.entropy[i]),
            scored_label_id=label_ids[i] if labelled else None,
            label_quality=float(quality[i]) if labelled else None,
            disagree=bool(scores.disagree[i]),
            out_of_fold=bool(oof[i]),
        ))
    Prediction.objects.bulk_create(rows, update_conflicts=True,
                                   unique_fields=["model_version", "patch"],
                                   update_fields=_SCORE_FIELDS, batch_size=1000)
    queue_scores.store(version, list(patch_ids), [r.label_quality for r in rows],
                       [r.disagree for r in rows], [r.entropy for r in rows])


def _claim(version: ModelVersion, limit: int) -> list[tuple[Any, ...]]:
    """Lock up to ``limit`` unpredicted patches nobody else holds (in the caller's
    transaction), as :func:`inference.embedding._claim` does for tiles: rows a worker predicted
    and committed after this statement's snapshot was taken are locked too, so the locked rows
    are checked again by a new statement, and those predicted meanwhile dropped."""
    while True:
        rows = list(
            unpredicted_patches(version)
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("id")
            .values_list("id", "grid", "current_label_id")[:limit]
        )
        if not rows:
            return []
        done = set(Prediction.objects.filter(
            model_version=version, patch_id__in=[row[0] for row in rows]
        ).values_list("patch_id", flat=True))
        fresh = [row for row in rows if row[0] not in done]
        if fresh:
            return fresh


def predict_chunk(version: ModelVersion, head: nn.Module, limit: int) -> int:
    """Predict and store up to ``limit`` unclaimed patches that lack a prediction, with
    ``head`` (the version's, loaded once per step by the caller)."""
    with transaction.atomic():
        rows = _claim(version, limit)
        if not rows:
            return 0
        patch_ids, grids, labels = zip(*rows, strict=True)
        embeddings = grid_embeddings(version.space, list(grids))
        probs = predict_probs(head, embeddings, blank=embeddings.blank,
                              device=inference_device())
        store_predictions(version, patch_ids, labels, probs)
    return len(rows)
