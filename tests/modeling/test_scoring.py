"""Queue scores and metrics against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from inference.modeling import metrics, score_patches

PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [1 / 3, 1 / 3, 1 / 3]])
LABELS = np.array([0, 0, -1])  # the third patch is unlabelled


def test_patch_scores_by_hand() -> None:
    s = score_patches(PROBS, LABELS)
    np.testing.assert_array_equal(s.predicted, [0, 2, 0])
    np.testing.assert_allclose(s.confidence, [0.7, 0.6, 1 / 3])
    np.testing.assert_allclose(s.margin, [0.5, 0.3, 0.0], atol=1e-12)
    h0 = -(0.7 * math.log(0.7) + 0.2 * math.log(0.2) + 0.1 * math.log(0.1)) / math.log(3)
    h1 = -(0.1 * math.log(0.1) + 0.3 * math.log(0.3) + 0.6 * math.log(0.6)) / math.log(3)
    np.testing.assert_allclose(s.entropy, [h0, h1, 1.0])
    assert abs(h0 - 0.72985) < 1e-4 and abs(h1 - 0.81735) < 1e-4
    np.testing.assert_allclose(s.self_confidence, [0.7, 0.1, np.nan])
    np.testing.assert_allclose(s.normalized_margin, [0.5, -0.5, np.nan])
    np.testing.assert_array_equal(s.disagree, [False, True, False])


def test_accepts_torch_and_rejects_bad_labels() -> None:
    s = score_patches(torch.tensor(PROBS), torch.tensor([1, 2, 0]))
    np.testing.assert_allclose(s.self_confidence, [0.2, 0.6, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(s.normalized_margin, [-0.5, 0.3, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="label 3 out of range"):
        score_patches(PROBS, [0, 3, 1])
    one_hot = score_patches(np.array([[1.0, 0.0]]), [1])
    assert one_hot.entropy[0] == 0.0 and one_hot.normalized_margin[0] == -1.0


def test_metrics_by_hand() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [0, 1, 1, 1, 2, 0]
    m = metrics(y_true, y_pred, num_classes=4)  # class 3 absent everywhere
    np.testing.assert_array_equal(
        m["confusion_matrix"], [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    )
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
    np.testing.assert_allclose(m["per_class_f1"], [0.5, 0.8, 2 / 3, 0.0])
    assert m["weighted_f1"] == pytest.approx((0.5 * 2 + 0.8 * 2 + 2 / 3 * 2) / 6)


def test_metrics_reject_out_of_range() -> None:
    with pytest.raises(ValueError, match="y_pred"):
        metrics([0, 1], [0, 5], num_classes=2)
