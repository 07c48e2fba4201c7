"""Train a head on a project's current labels and save it as a new model version.

The recipe fits the project's size (:mod:`inference.recipe`; SPIDER's own at SPIDER's size);
K slide-grouped folds give the labelled train-split patches out-of-fold probabilities (so
their label-quality scores and confident learning are not in-sample) and stop training
early on the held-out slides' loss; the test split gives the reported metrics. Every patch
gets a prediction from the new version, which becomes active only if it is not worse than
the active one (:mod:`inference.guard`); otherwise it is kept with the reason.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from django.db.models import Max
from django.utils import timezone

from annotations.models import LabelClass, Patch, Project, Review, Split
from inference import confident_learning, crowd, fitting, guard, recipe
from inference.embedding import grid_embeddings, inference_device
from inference.modeling import TrainProgress, metrics
from inference.models import EmbeddingSpace, LabelIssue, ModelVersion
from inference.options import TrainOptions
from inference.predicting import store_predictions
from inference.queries import active_version
from inference.queue_scores import activate_version, store_read_scores
from inference.registry import create_version, project_class_names

# Labels a reviewer has doubted are not taught to the model.
UNTRAINABLE = guard.UNTRAINABLE


class TrainingError(ValueError):
    """The project's labels cannot train a head (too few labelled patches or slides)."""


def train_version(
    project: Project,
    space: EmbeddingSpace,
    options: TrainOptions,
    *,
    user=None,
    progress: Callable[[int, int], None] | None = None,
    extra: dict | None = None,
) -> ModelVersion:
    """Train, evaluate and save a new version, store its predictions and confident-learning
    flags, and activate it unless it is worse than the active one (or ``force_activate``).

    ``progress(done, total)`` counts optimiser steps over all folds and the final fit
    (``total`` is the most there can be; early stopping ends sooner). ``extra`` is kept in
    the version's ``training`` record (a round's trigger).
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
    slide_ids = np.asarray(slides)
    train_rows = np.flatnonzero((split == Split.TRAIN) & (labels >= 0))
    test_rows = np.flatnonzero((split == Split.TEST) & (labels >= 0))
    if len(train_rows) == 0:
        raise TrainingError(f"project {project.slug!r} has no labelled train-split patches")
    n_slides = len(set(slide_ids[train_rows].tolist()))
    chosen = recipe.choose(options, len(train_rows), n_slides)
    if chosen.folds < 2:
        raise TrainingError(f"out-of-fold scores need train patches from 2+ slides, got {n_slides}")

    embeddings = grid_embeddings(space, grids)
    report = _step_counter(_max_steps(chosen), progress)
    train_labels = np.where(split == Split.TRAIN, labels, -1)
    fitted = fitting.fit(embeddings, train_labels, slide_ids, train_rows, chosen, len(classes),
                         device=inference_device(), progress=report)
    probs, oof = fitted.probs, fitted.out_of_fold.probs

    evaluated = test_rows if len(test_rows) else train_rows
    result = metrics(labels[evaluated], probs[evaluated].argmax(1), len(classes))
    oof_acc = float((oof.argmax(1) == labels[train_rows]).mean())
    learned = confident_learning.analyse(labels[train_rows], oof)
    version = create_version(
        project,
        name=options.name or f"{options.head}-{timezone.now():%Y%m%d-%H%M%S}",
        space=space, head=fitted.head, class_names=classes,
        source=ModelVersion.Source.TRAINED,
        source_detail=f"trained on {len(train_rows)} labelled train patches",
        training={**_snapshot(project, chosen, train_rows, labels, classes),
                  **fitted.summary(), **(extra or {})},
        metrics={**_metrics_json(result, classes, evaluated_on="test" if len(test_rows) else
                                 "train (out-of-fold)", n=len(evaluated), oof_accuracy=oof_acc),
                 "confident_learning": learned.as_json(classes) if learned else None},
        activate=False, user=user,
    )
    oof_mask = np.zeros(len(patch_ids), dtype=bool)
    oof_mask[train_rows] = True
    store_predictions(version, patch_ids, label_ids, probs, out_of_fold=oof_mask)
    if learned is not None:
        _store_issues(version, [patch_ids[i] for i in train_rows[learned.issues]],
                      [label_ids[i] for i in train_rows[learned.issues]],
                      oof[learned.issues].argmax(1), classes, position)
    _crowd(version, patch_ids, probs, position)
    _decide_activation(version, options)
    return version


def _crowd(version: ModelVersion, patch_ids: list[int], probs: np.ndarray,
           position: dict[int, int]) -> None:
    """CROWDLAB reviewer quality and ActiveLab's next reads, once patches have two reads."""
    class_ids = [cid for cid, _ in sorted(position.items(), key=lambda item: item[1])]
    found = crowd.analyse(version, patch_ids, probs, class_ids)
    if found is not None:
        version.metrics = {**version.metrics, "crowdlab": found.summary}
        ModelVersion.objects.filter(pk=version.pk).update(metrics=version.metrics)
        store_read_scores(version, found.read_scores)


def _decide_activation(version: ModelVersion, options: TrainOptions) -> None:
    """Activate unless worse than the active version; record why either way."""
    active = active_version(version.project)
    verdict = guard.judge(version, active)
    record = verdict.as_json()
    if active is not None and active.pk == version.pk:
        record["activated"], record["reason"] = True, "first model of the project"
    elif not options.activate:
        record["activated"] = False
        record["reason"] = f"not activated (asked not to); {verdict.reason}"
    elif verdict.activate or options.force_activate:
        activate_version(version)
        record["activated"] = True
        if not verdict.activate:
            record["reason"] = f"activated as asked although {verdict.reason}"
    else:
        record["activated"] = False
    version.training = {**version.training, "activation": record}
    ModelVersion.objects.filter(pk=version.pk).update(training=version.training)


def _store_issues(version: ModelVersion, patch_ids: list[int], given: list[int],
                  likely: np.ndarray, classes: list[str], position: dict[int, int]) -> None:
    class_id = {i: cid for cid, i in position.items()}
    LabelIssue.objects.bulk_create(
        [LabelIssue(model_version=version, patch_id=p, given_label_id=g,
                    likely_label_id=class_id[int(k)])
         for p, g, k in zip(patch_ids, given, likely, strict=True)],
        ignore_conflicts=True, batch_size=2000)


def _class_positions(project: Project, classes: list[str]) -> dict[int, int]:
    ids = dict(LabelClass.objects.filter(project=project).values_list("name", "id"))
    return {ids[name]: i for i, name in enumerate(classes)}


def _max_steps(chosen: recipe.Recipe) -> int:
    per_fold = -(-chosen.n_train * (chosen.folds - 1) // (chosen.folds * chosen.batch_size))
    return (per_fold * chosen.folds * chosen.repeats + chosen.steps_per_epoch) * chosen.epochs


def _step_counter(total: int, progress: Callable[[int, int], None] | None):
    done = 0

    def report(_: TrainProgress) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, max(total, done))

    return report


def _snapshot(project: Project, chosen: recipe.Recipe, train_rows: np.ndarray,
              labels: np.ndarray, classes: list[str]) -> dict:
    """What the head was trained on and how, enough to tell two versions' runs apart."""
    counts = np.bincount(labels[train_rows], minlength=len(classes))
    last_review = Review.objects.filter(patch__project=project).aggregate(m=Max("id"))["m"]
    return {
        "train_patches": len(train_rows),
        "per_class": {name: int(c) for name, c in zip(classes, counts, strict=True)},
        "last_review_id": last_review,
        "epochs": chosen.epochs, "folds": chosen.folds, "repeats": chosen.repeats,
        "seed": chosen.seed,
        "head": chosen.head, "batch_size": chosen.batch_size, "lr": chosen.lr,
        "patience": chosen.patience, "steps_per_epoch": chosen.steps_per_epoch,
        "choices": chosen.reasons,
        "recipe": f"AdamW lr {chosen.lr:g} wd {chosen.weight_decay:g}, label smoothing "
                  f"{chosen.label_smoothing:g}, warm-up + cosine, batch {chosen.batch_size}, "
                  f"up to {chosen.epochs} epochs"
                  + (f", early stopping after {chosen.patience} epochs without a lower "
                     "out-of-fold loss" if chosen.patience else ""),
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
