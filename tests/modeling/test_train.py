"""Training is reproducible, learns separable data, and OOF never mixes a slide's folds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from inference.modeling import (
    TrainConfig,
    TrainProgress,
    assign_folds,
    metrics,
    out_of_fold_probs,
    predict_probs,
    train_head,
)
from inference.modeling import train as train_module

CLASSES, DIM = 4, 16
CENTROIDS = np.random.default_rng(42).normal(size=(CLASSES, DIM)) * 2


def separable(n: int, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Fixed class centroids shared by all 25 tiles plus noise; float16 like the real cache."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, CLASSES, size=n)
    x = CENTROIDS[y][:, None, :] + rng.normal(size=(n, 25, DIM))
    return torch.from_numpy(x.astype(np.float16)), y


FAST = TrainConfig(epochs=6, batch_size=32)


def test_same_seed_same_weights() -> None:
    x, y = separable(200)
    blank = np.zeros((200, 25), dtype=bool)
    blank[::3, :5] = True
    a = train_head(x, y, num_classes=CLASSES, blank=blank, config=FAST).state_dict()
    b = train_head(x, y, num_classes=CLASSES, blank=blank, config=FAST).state_dict()
    other_seed = TrainConfig(epochs=6, batch_size=32, seed=1)
    c = train_head(x, y, num_classes=CLASSES, blank=blank, config=other_seed).state_dict()
    for key, value in a.items():
        assert torch.equal(value, b[key]), key
    assert any(not torch.equal(value, c[key]) for key, value in a.items())


@pytest.mark.parametrize("kind", ["context", "centre"])
def test_learns_separable_embeddings(kind: str) -> None:
    x, y = separable(608)  # 19 batches of 32
    y[:5] = -1  # unlabelled rows are skipped, not trained on as a class
    seen: list[TrainProgress] = []
    # A bare linear probe on raw features needs a larger lr than the recipe's 4e-4 to converge
    # in 152 steps; the recipe's lr is tuned for the LayerNorm'd BERT head and 100k+ patches.
    config = TrainConfig(epochs=8, batch_size=32, head=kind, lr=4e-4 if kind == "context" else 1e-2)
    head = train_head(x, y, num_classes=CLASSES, config=config, progress=seen.append)
    x_test, y_test = separable(300, seed=1)
    probs = predict_probs(head, x_test)
    assert probs.shape == (300, CLASSES)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert metrics(y_test, probs.argmax(1), CLASSES)["accuracy"] > 0.95
    assert seen[-1].step == seen[-1].total_steps == 8 * 19
    assert sorted({p.epoch for p in seen}) == list(range(8))


def test_folds_group_by_slide() -> None:
    rng = np.random.default_rng(0)
    slides = np.repeat([f"slide-{i}" for i in range(23)], rng.integers(1, 40, size=23))
    fold_of = assign_folds(slides, folds=5)
    assert set(fold_of) == set(range(5))
    for fold in range(5):
        held = set(slides[fold_of == fold])
        train = set(slides[fold_of != fold])
        assert held and not held & train
    sizes = np.bincount(fold_of)
    assert sizes.max() - sizes.min() <= 40  # greedy balance: within one slide's size
    with pytest.raises(ValueError, match="at least 2 slides"):
        assign_folds(["only"] * 5)
    assert set(assign_folds(["a", "b", "a"], folds=5)) == {0, 1}  # fewer slides than folds


def test_out_of_fold_never_trains_on_held_slide(monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = separable(120)
    slides = np.repeat(np.arange(12), 10)
    calls: list[np.ndarray] = []
    real = train_module.train_head

    def spy(*args, indices, **kwargs):
        calls.append(indices)
        return real(*args, indices=indices, **kwargs)

    monkeypatch.setattr(train_module, "train_head", spy)
    folds: list[int | None] = []
    probs = out_of_fold_probs(
        x,
        y,
        slides,
        num_classes=CLASSES,
        folds=3,
        config=TrainConfig(epochs=1, batch_size=32),
        progress=lambda p: folds.append(p.fold),
    )
    assert probs.shape == (120, CLASSES)
    np.testing.assert_allclose(probs.sum(1), 1.0, rtol=1e-5)
    assert len(calls) == 3 and sorted(set(folds)) == [0, 1, 2]
    fold_of = assign_folds(slides, folds=3)
    for fold, trained in enumerate(calls):
        assert not set(slides[trained]) & set(slides[fold_of == fold])
