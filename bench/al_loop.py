"""One retraining round as the worker runs it, on an embedded dataset held in memory.

The worker's own steps (:func:`inference.fitting.fit` with :func:`inference.recipe.choose`'s
defaults for the size) and the disagreement queue's order (the model disputes the label,
lowest self-confidence first, as ``inference.modeling.score_patches`` scores it), without
the database in between.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bench.al_data import Embedded, GridView


@dataclass
class Round:
    probs: np.ndarray  # (N, C): out of fold on the train split, the final head on test
    recipe: dict
    test_accuracy: float  # against the planted truth

    def disagreement_queue(self, labels: np.ndarray, open_: np.ndarray) -> np.ndarray:
        """Patch rows in the disagreement queue's order, among ``open_`` (unreviewed) ones."""
        from inference.modeling import score_patches

        scores = score_patches(self.probs, labels)
        rows = np.flatnonzero(scores.disagree & open_)
        return rows[np.lexsort((rows, scores.self_confidence[rows]))]


def train_round(data: Embedded, labels: np.ndarray, *, device: str = "cpu",
                seed: int = 0, **given) -> Round:
    """Train on ``labels`` with the defaults for the size (or the ``given`` options)."""
    from inference.fitting import fit
    from inference.options import TrainOptions
    from inference.recipe import choose

    view = GridView(data)
    train_rows = np.flatnonzero(~data.test & (labels >= 0))
    recipe = choose(TrainOptions(seed=seed, **given), len(train_rows),
                    len(set(data.slides[train_rows].tolist())))
    fitted = fit(view, np.where(data.test, -1, labels), data.slides, train_rows, recipe,
                 len(data.classes), device=device)
    acc = float((fitted.probs[data.test].argmax(1) == data.truth[data.test]).mean())
    return Round(fitted.probs, {**recipe.as_json(), **fitted.summary()}, acc)
