"""Confident learning (Northcutt, Jiang & Chuang, JAIR 2021) over out-of-fold probabilities,
with cleanlab. Worker-only: the web tier shows what this stored and never imports cleanlab.

Per class, a label counts as confidently another class when that class's probability
reaches its per-class threshold (the mean self-confidence of the patches labelled with it);
the calibrated confident joint estimates how many labels of each class are wrong, the noise
matrix P(given label | true class), and which patches to flag (prune by noise rate).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ConfidentLearning:
    issues: np.ndarray  # (N,) bool: cleanlab's find_label_issues
    estimated_errors: list[int]  # per given class: estimated wrong labels
    noise_matrix: list[list[float]]  # [given][true] = P(given label | true class)
    joint: list[list[int]]  # calibrated confident joint, counts [given][true]

    def as_json(self, classes: list[str]) -> dict[str, Any]:
        return {"method": "cleanlab 2.9 confident learning, prune by noise rate",
                "issues": int(self.issues.sum()),
                "estimated_errors": dict(zip(classes, self.estimated_errors, strict=True)),
                "noise_matrix": self.noise_matrix, "joint": self.joint,
                "patches": len(self.issues)}


def analyse(labels: np.ndarray, probs: np.ndarray) -> ConfidentLearning | None:
    """Confident learning for ``labels`` (N,) against out-of-fold ``probs`` (N, C).

    None when it cannot be estimated: fewer than two classes present, or too few patches
    for every present class to have a threshold.
    """
    from cleanlab.count import compute_confident_joint, estimate_latent
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, c = probs.shape
    if n < 2 * c or len(np.unique(labels)) < 2:
        return None
    probs = probs / probs.sum(axis=1, keepdims=True)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        joint = compute_confident_joint(labels, probs, calibrate=True)
        _, noise, _ = estimate_latent(joint, labels)
        issues = find_label_issues(labels, probs, confident_joint=joint,
                                   filter_by="prune_by_noise_rate", n_jobs=1)
    joint = np.nan_to_num(np.asarray(joint, dtype=np.float64))
    errors = np.rint(joint.sum(axis=1) - np.diag(joint)).astype(int)
    return ConfidentLearning(
        issues=np.asarray(issues, dtype=bool),
        estimated_errors=[int(e) for e in errors],
        noise_matrix=[[round(float(v), 4) for v in row]
                      for row in np.nan_to_num(np.asarray(noise))],
        joint=[[int(v) for v in np.rint(row)] for row in joint],
    )


def label_quality(labels: np.ndarray, probs: np.ndarray, method: str) -> np.ndarray:
    """cleanlab's label-quality score per labelled patch (``self_confidence`` or
    ``normalized_margin``: the same measures as ``inference.modeling.score_patches``)."""
    from cleanlab.rank import get_label_quality_scores

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(get_label_quality_scores(np.asarray(labels, dtype=np.int64),
                                                   np.asarray(probs, dtype=np.float64),
                                                   method=method), dtype=np.float64)
