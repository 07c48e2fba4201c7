"""The training recipe a run actually uses: the user's choices, else defaults fitted to the size.

SPIDER's recipe (10 epochs, batch 256, AdamW 4e-4, wd 0.01, label smoothing 0.2) was made for
tens of thousands of patches. On a 250-patch project batch 256 is one optimiser step per
epoch, ten steps in all, and the head stays near chance (issue 14: test accuracy 0.54). So
below SPIDER's size the batch shrinks until an epoch has enough steps, the epochs grow until
the run has enough steps, and early stopping on the out-of-fold slides' loss ends it once
more epochs stop helping. Small projects also average the out-of-fold probabilities of
several runs (other seeds, other fold splits): with a few hundred patches one run's folds vary
enough to move planted errors in and out of the top of the disagreement queue. Pure Python:
the web tier shows these choices.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from inference.options import SPIDER_BATCH_SIZE, SPIDER_EPOCHS, SPIDER_LR, TrainOptions

# At and above this many training patches SPIDER's recipe is used as published: batch 256
# then gives >= 40 optimiser steps per epoch.
SPIDER_SIZED = 40 * SPIDER_BATCH_SIZE
MIN_STEPS_PER_EPOCH = 25
MIN_TOTAL_STEPS = 1500
MIN_BATCH = 16
MAX_EPOCHS = 150
SMALL_LR = 1e-3  # measured on the demo (bench/active_learning_bench.py): 4e-4 underfits
# Below this many training patches the out-of-fold probabilities are the mean of SMALL_REPEATS
# runs. Measured (bench/active_learning_bench.py, 265 patches, 26 planted flips): single runs
# with seeds 0, 1, 2 put 23, 26 and 25 of them in the first 2x of the disagreement queue, their
# mean 26. Training costs SMALL_REPEATS x, a minute or two on a CPU at this size.
SMALL_PROJECT = 2000
SMALL_REPEATS = 3


@dataclass(frozen=True)
class Recipe:
    """Everything that decides a training run, and why each value was chosen."""

    n_train: int
    epochs: int
    batch_size: int
    lr: float
    patience: int | None
    folds: int
    seed: int
    head: str
    repeats: int = 1
    weight_decay: float = 0.01
    label_smoothing: float = 0.2
    reasons: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def steps_per_epoch(self) -> int:
        return -(-self.n_train // self.batch_size)


def _pow2_floor(x: float) -> int:
    return int(2 ** math.floor(math.log2(max(1.0, x))))


def choose(options: TrainOptions, n_train: int, n_slides: int) -> Recipe:
    """The recipe for ``n_train`` labelled training patches on ``n_slides`` slides.

    A value the user gave is kept as given; each default says why it was picked.
    """
    why: dict[str, str] = {}
    spider = n_train >= SPIDER_SIZED
    if options.batch_size is not None:
        batch, why["batch_size"] = options.batch_size, "given"
    elif spider:
        batch, why["batch_size"] = SPIDER_BATCH_SIZE, "SPIDER's recipe"
    else:
        batch = max(MIN_BATCH, min(SPIDER_BATCH_SIZE,
                                   _pow2_floor(n_train / MIN_STEPS_PER_EPOCH)))
        why["batch_size"] = (f"{n_train} patches: >= {MIN_STEPS_PER_EPOCH} steps per epoch "
                             f"(SPIDER's 256 from {SPIDER_SIZED})")
    per_epoch = max(1, -(-n_train // batch))
    if options.epochs is not None:
        epochs, why["epochs"] = options.epochs, "given"
    elif spider:
        epochs, why["epochs"] = SPIDER_EPOCHS, "SPIDER's recipe"
    else:
        epochs = max(SPIDER_EPOCHS, min(MAX_EPOCHS, -(-MIN_TOTAL_STEPS // per_epoch)))
        why["epochs"] = (f"at most; {per_epoch} steps per epoch, >= {MIN_TOTAL_STEPS} steps "
                         "in all, early stopping may end sooner")
    if options.lr is not None:
        lr, why["lr"] = options.lr, "given"
    elif spider or batch >= SPIDER_BATCH_SIZE:
        lr, why["lr"] = SPIDER_LR, "SPIDER's recipe"
    else:
        lr, why["lr"] = SMALL_LR, f"batch {batch} < 256"
    if options.patience is not None:
        patience: int | None = options.patience or None
        why["patience"] = "given" if patience else "given: no early stopping"
    else:
        patience = 3 if spider else max(5, epochs // 10)
        why["patience"] = "epochs without a lower out-of-fold loss before stopping"
    if options.repeats is not None:
        repeats, why["repeats"] = options.repeats, "given"
    elif n_train < SMALL_PROJECT:
        repeats = SMALL_REPEATS
        why["repeats"] = (f"{n_train} < {SMALL_PROJECT} patches: out-of-fold probabilities "
                          f"averaged over {SMALL_REPEATS} runs (seeds and folds)")
    else:
        repeats, why["repeats"] = 1, f">= {SMALL_PROJECT} patches: one out-of-fold run"
    folds = min(options.folds, n_slides)
    why["folds"] = (f"{options.folds} asked" if folds == options.folds
                    else f"{options.folds} asked, {n_slides} slides")
    return Recipe(n_train=n_train, epochs=epochs, batch_size=batch, lr=lr, patience=patience,
                  folds=folds, seed=options.seed, head=options.head, repeats=repeats,
                  reasons=why)
