"""Per-patch scores that rank review queues, and the evaluation metrics the field reports.

Pure numpy so the web side can score stored probabilities without torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

UNLABELLED = -1


@dataclass(frozen=True)
class PatchScores:
    """One entry per patch. Label scores are NaN (and ``disagree`` False) for unlabelled ones."""

    predicted: np.ndarray  # (N,) int64
    confidence: np.ndarray  # max probability
    margin: np.ndarray  # top1 - top2
    entropy: np.ndarray  # normalised to 0..1 by log(C)
    self_confidence: np.ndarray  # p[label] (cleanlab's label quality)
    normalized_margin: np.ndarray  # p[label] - max_{k != label} p[k], in -1..1
    disagree: np.ndarray  # predicted != label


def _as_numpy(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().float().cpu().numpy()
    return np.asarray(x)


def score_patches(probs: Any, labels: Any | None = None) -> PatchScores:
    """Scores from probabilities (N, C) and current labels (N,), -1 meaning unlabelled.

    Use out-of-fold probabilities for labelled training patches: in-sample ones have seen
    the label and flatter it.
    """
    p = _as_numpy(probs).astype(np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be (N, C) with C >= 2, got {p.shape}")
    n, c = p.shape
    y = np.full(n, UNLABELLED, dtype=np.int64) if labels is None else _as_numpy(labels)
    y = y.astype(np.int64)
    if y.shape != (n,):
        raise ValueError(f"labels must be ({n},), got {y.shape}")
    bad = (y < UNLABELLED) | (y >= c)
    if bad.any():
        raise ValueError(f"label {int(y[bad][0])} out of range 0..{c - 1} (or -1 for none)")

    top2 = np.sort(p, axis=1)[:, -2:]
    predicted = p.argmax(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    entropy = -plogp.sum(axis=1) / np.log(c)

    labelled = y >= 0
    rows = np.arange(n)
    safe_y = np.where(labelled, y, 0)
    p_label = p[rows, safe_y]
    others = p.copy()
    others[rows, safe_y] = -np.inf
    p_other = others.max(axis=1)
    nan = np.full(n, np.nan)
    return PatchScores(
        predicted=predicted.astype(np.int64),
        confidence=top2[:, 1],
        margin=top2[:, 1] - top2[:, 0],
        entropy=np.clip(entropy, 0.0, 1.0),
        self_confidence=np.where(labelled, p_label, nan),
        normalized_margin=np.where(labelled, p_label - p_other, nan),
        disagree=labelled & (predicted != y),
    )


def confusion_matrix(y_true: Any, y_pred: Any, num_classes: int) -> np.ndarray:
    """(C, C) counts; rows are true classes, columns predicted."""
    t, p = _as_numpy(y_true).astype(np.int64), _as_numpy(y_pred).astype(np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true {t.shape} and y_pred {p.shape} differ in shape")
    for name, arr in (("y_true", t), ("y_pred", p)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} has values outside 0..{num_classes - 1}")
    return np.bincount(t * num_classes + p, minlength=num_classes**2).reshape(
        num_classes, num_classes
    )


def metrics(y_true: Any, y_pred: Any, num_classes: int) -> dict[str, Any]:
    """Accuracy, balanced accuracy, weighted F1, per-class F1 and the confusion matrix.

    Conventions follow scikit-learn: balanced accuracy averages recall over classes present
    in ``y_true``; an undefined F1 (no true and no predicted samples) counts as 0.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    total = cm.sum()
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1).astype(np.float64)
    predicted = cm.sum(axis=0).astype(np.float64)
    denom = support + predicted
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "balanced_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / support.sum()) if total else 0.0,
        "per_class_f1": f1,
        "confusion_matrix": cm,
    }
