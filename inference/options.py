"""What a user may ask of a training run: plain data, no torch (the web tier builds it)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

# SPIDER's published recipe (paper Table A1); inference.modeling.train.TrainConfig has the
# same defaults, and a test keeps the two equal.
SPIDER_EPOCHS = 10
SPIDER_BATCH_SIZE = 256
SPIDER_LR = 4e-4
HEADS = ("context", "centre")


@dataclass(frozen=True)
class TrainOptions:
    """None means "choose for the project's size" (:mod:`inference.recipe`); ``patience`` 0
    turns early stopping off; ``activate`` makes the new version active unless it is worse
    than the active one (:mod:`inference.guard`), ``force_activate`` even then."""

    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    patience: int | None = None
    repeats: int | None = None  # out-of-fold runs averaged (different seeds and folds)
    folds: int = 5
    seed: int = 0
    head: str = "context"
    name: str = ""
    activate: bool = True
    force_activate: bool = False

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {', '.join(HEADS)}, not {self.head!r}")

    def as_json(self) -> dict[str, Any]:
        return asdict(self)
