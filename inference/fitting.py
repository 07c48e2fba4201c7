"""Fit a head with a recipe: out-of-fold probabilities for the training rows (the mean of
``recipe.repeats`` runs with their own seeds and fold splits), then the final head for
everything else. No Django here, so the worker (:mod:`inference.training`) and the
active-learning bench run the very same steps.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from inference.modeling import (
    OutOfFold,
    TrainConfig,
    out_of_fold_fit,
    predict_probs,
    train_head,
)
from inference.recipe import Recipe

SMALL_BATCH = 128


@dataclass
class Fitted:
    head: nn.Module
    probs: np.ndarray  # (N, C): out of fold on ``train_rows``, the final head elsewhere
    out_of_fold: OutOfFold
    final_epochs: int

    def summary(self) -> dict[str, Any]:
        """What early stopping decided, for the model version's record."""
        return {"final_epochs": self.final_epochs,
                "best_epochs_per_fold": self.out_of_fold.best_epochs,
                "oof_loss": self.out_of_fold.loss}


def final_epochs(recipe: Recipe, oof: OutOfFold) -> int:
    """The final head (no held-out rows to stop on) trains for the folds' median best epoch
    count: what early stopping found, on the same number of patches give or take a fold."""
    if not oof.best_epochs:
        return recipe.epochs
    return max(1, int(np.median(oof.best_epochs)))


def config_for(recipe: Recipe, device: str, *, epochs: int | None = None,
               early_stopping: bool = True) -> TrainConfig:
    return TrainConfig(epochs=epochs or recipe.epochs, batch_size=recipe.batch_size,
                       lr=recipe.lr, weight_decay=recipe.weight_decay,
                       label_smoothing=recipe.label_smoothing, seed=recipe.seed,
                       head=recipe.head,  # type: ignore[arg-type]
                       device=device, patience=recipe.patience if early_stopping else None)


def fit(embeddings: Any, labels: np.ndarray, slides: np.ndarray, train_rows: np.ndarray,
        recipe: Recipe, num_classes: int, *, device: str = "cpu",
        progress: Callable[[Any], None] | None = None) -> Fitted:
    """Out-of-fold heads over slide-grouped folds of ``train_rows``, then a head on all of
    them; ``embeddings`` is (N, 25, D)-indexable with a ``blank`` (N, 25) mask."""
    with _threads_for(recipe, device):
        return _fit(embeddings, labels, slides, train_rows, recipe, num_classes, device,
                    progress)


@contextmanager
def _threads_for(recipe: Recipe, device: str) -> Iterator[None]:
    """Small batches on a CPU run fastest on one thread: a 16-patch step is too small to
    split, and threads fighting over shared cores made them 3x slower (measured, 2 cores)."""
    before = torch.get_num_threads()
    if device == "cpu" and recipe.batch_size < SMALL_BATCH:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fit(embeddings: Any, labels: np.ndarray, slides: np.ndarray, train_rows: np.ndarray,
         recipe: Recipe, num_classes: int, device: str,
         progress: Callable[[Any], None] | None) -> Fitted:
    sub = _Rows(embeddings, train_rows)
    runs = [out_of_fold_fit(sub, labels[train_rows], slides[train_rows],
                            num_classes=num_classes, blank=sub.blank, folds=recipe.folds,
                            config=replace(config_for(recipe, device), seed=recipe.seed + run),
                            progress=progress)
            for run in range(recipe.repeats)]
    oof = OutOfFold(np.mean([r.probs for r in runs], axis=0),
                    [curve for r in runs for curve in r.held_loss])
    epochs = final_epochs(recipe, oof)
    head = train_head(embeddings, labels, num_classes=num_classes, blank=embeddings.blank,
                      config=config_for(recipe, device, epochs=epochs, early_stopping=False),
                      indices=train_rows, progress=progress)
    probs = predict_probs(head, embeddings, blank=embeddings.blank, device=device)
    probs[train_rows] = oof.probs
    return Fitted(head, probs, oof, epochs)


class _Rows:
    """Rows ``rows`` of a grid-embedding view, indexable like the (N, 25, D) array it stands for."""

    def __init__(self, base: Any, rows: np.ndarray) -> None:
        self.base, self.rows = base, rows
        self.shape = (len(rows), *base.shape[1:])
        self.blank = base.blank[rows]

    def __getitem__(self, index: Any) -> np.ndarray:
        return np.asarray(self.base[self.rows[index]])
