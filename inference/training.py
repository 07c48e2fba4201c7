"""Train a head on a project's current labels and save it as a new model version.

The labelled train-split patches train the head with SPIDER's recipe; K slide-grouped folds
give them out-of-fold probabilities (so their label-quality scores are not in-sample); the
test split gives the reported metrics. Every patch gets a prediction from the new version.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.db.models import Max
from django.utils import timezone

from annotations.models import Patch, PatchStatus, Project, Review, Split
from inference.embedding import grid_embeddings, inference_device
from inference.modeling import (
    TrainConfig,
    TrainProgress,
    assign_folds,
    metrics,
    out_of_fold_probs,
    predict_probs,
    train_head,
)
from inference.models import EmbeddingSpace, ModelVersion
from inference.options import TrainOptions
from inference.predicting import store_predictions
from inference.registry import create_version, project_class_names

# Labels a reviewer has doubted are not taught to the model.
UNTRAINABLE = (PatchStatus.EXCLUDED, PatchStatus.UNSURE, PatchStatus.DISPUTED)


class TrainingError(ValueError):
    """The project's labels cannot train a head (too few labelled patches or slides)."""


def train_version(
    project: Project,
    space: EmbeddingSpace,
    options: TrainOptions,
    *,
    user=None,
    progress: Callable[[int, int], None] | None = None,
) -> ModelVersion:
    """Train, evaluate, save and (by default) activate a new version; store its predictions.

    ``progress(done, total)`` counts optimiser steps over all folds and the final fit.
    """
    classes = project_class_names(project)
    rows = list(Patch.objects.filter(project=project).order_by("id")
                .values_list("id", "grid", "current_label_id", "split", "slide_id", "status"))
    if not rows:
        raise TrainingError(f"project {project.slug!r} has no patches")
    patch_ids, grids, label_ids, splits, slides, statuses = (list(c) for c in zip(*rows,
                                                                                    strict=True))
    position = _class_positions(project, classes)
    labels = np.array([position.get(lab, -1) if st not in UNTRAINABLE else -1
                       for lab, st in zip(label_ids, statuses, strict=True)], dtype=np.int64)
    split = np.array(splits)
    train_rows = np.flatnonzero((split == Split.TRAIN) & (labels >= 0))
    test_rows = np.flatnonzero((split == Split.TEST) & (labels >= 0))
    if len(train_rows) == 0:
        raise TrainingError(f"project {project.slug!r} has no labelled train-split patches")
    n_slides = len(set(np.asarray(slides)[train_rows].tolist()))
    folds = min(options.folds, n_slides)
    if folds < 2:
        raise TrainingError(f"out-of-fold scores need train patches from 2+ slides, got {n_slides}")

    embeddings = grid_embeddings(space, grids)
    config = TrainConfig(epochs=options.epochs, batch_size=options.batch_size, lr=options.lr,
                         seed=options.seed, head=options.head,  # type: ignore[arg-type]
                         device=inference_device())
    steps = _count_steps(len(train_rows), folds, config, slides, train_rows)
    report = _step_counter(steps, progress)

    train_view = _Subset(embeddings, train_rows)
    oof = out_of_fold_probs(train_view, labels[train_rows], np.asarray(slides)[train_rows],
                            num_classes=len(classes), blank=train_view.blank, folds=folds,
                            config=config, progress=report)
    head = train_head(embeddings, labels, num_classes=len(classes), blank=embeddings.blank,
                      config=config, indices=train_rows, progress=report)
    probs = predict_probs(head, embeddings, blank=embeddings.blank, device=config.device)
    probs[train_rows] = oof

    evaluated = test_rows if len(test_rows) else train_rows
    result = metrics(labels[evaluated], probs[evaluated].argmax(1), len(classes))
    oof_acc = float((oof.argmax(1) == labels[train_rows]).mean())
    version = create_version(
        project,
        name=options.name or f"{options.head}-{timezone.now():%Y%m%d-%H%M%S}",
        space=space, head=head, class_names=classes,
        source=ModelVersion.Source.TRAINED,
        source_detail=f"train_head on {len(train_rows)} labelled train patches",
        training=_snapshot(project, options, folds, train_rows, labels, classes),
        metrics=_metrics_json(result, classes, evaluated_on="test" if len(test_rows) else
                              "train (out-of-fold)", n=len(evaluated), oof_accuracy=oof_acc),
        activate=options.activate, user=user,
    )
    oof_mask = np.zeros(len(patch_ids), dtype=bool)
    oof_mask[train_rows] = True
    store_predictions(version, patch_ids, label_ids, probs, out_of_fold=oof_mask)
    return version


class _Subset:
    """Rows ``rows`` of a grid-embedding view, indexable like the (N, 25, D) array it stands for."""

    def __init__(self, base, rows: np.ndarray) -> None:
        self.base, self.rows = base, rows
        self.shape = (len(rows), *base.shape[1:])
        self.blank = base.blank[rows]

    def __getitem__(self, index) -> np.ndarray:
        return self.base[self.rows[index]]


def _class_positions(project: Project, classes: list[str]) -> dict[int, int]:
    from annotations.models import LabelClass

    ids = dict(LabelClass.objects.filter(project=project).values_list("name", "id"))
    return {ids[name]: i for i, name in enumerate(classes)}


def _count_steps(n_train: int, folds: int, config: TrainConfig, slides, train_rows) -> int:
    fold_of = assign_folds(np.asarray(slides)[train_rows], folds, config.seed)
    per_epoch = sum(-(-int((fold_of != f).sum()) // config.batch_size) for f in range(folds))
    return (per_epoch + -(-n_train // config.batch_size)) * config.epochs


def _step_counter(total: int, progress: Callable[[int, int], None] | None):
    done = 0

    def report(_: TrainProgress) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return report


def _snapshot(project: Project, options: TrainOptions, folds: int, train_rows: np.ndarray,
              labels: np.ndarray, classes: list[str]) -> dict:
    """What the head was trained on, enough to tell two versions' data apart."""
    counts = np.bincount(labels[train_rows], minlength=len(classes))
    last_review = Review.objects.filter(patch__project=project).aggregate(m=Max("id"))["m"]
    return {
        "train_patches": len(train_rows),
        "per_class": {name: int(c) for name, c in zip(classes, counts, strict=True)},
        "last_review_id": last_review,
        "epochs": options.epochs, "folds": folds, "seed": options.seed, "head": options.head,
        "recipe": f"AdamW lr {options.lr:g} wd 0.01, label smoothing 0.2, warm-up + cosine, "
                  f"batch {options.batch_size}",
    }


def _metrics_json(result: dict, classes: list[str], **extra) -> dict:
    return {
        "accuracy": result["accuracy"],
        "balanced_accuracy": result["balanced_accuracy"],
        "weighted_f1": result["weighted_f1"],
        "per_class_f1": {name: float(f) for name, f in
                         zip(classes, result["per_class_f1"], strict=True)},
        "confusion_matrix": result["confusion_matrix"].tolist(),
        **extra,
    }
