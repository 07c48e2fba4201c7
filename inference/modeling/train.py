"""Train heads on cached tile embeddings with SPIDER's recipe, and out-of-fold predictions.

The backbone stays frozen (as in SPIDER), so training only ever touches the (N, 25, D)
embedding cache: minutes on a CPU for a whole organ's head, not hours.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .heads import CentreLinearHead, SpiderContextHead

HeadKind = Literal["context", "centre"]


@dataclass(frozen=True)
class TrainConfig:
    """SPIDER's published recipe (paper Table A1) as defaults."""

    epochs: int = 10
    batch_size: int = 256
    lr: float = 4e-4
    weight_decay: float = 0.01
    label_smoothing: float = 0.2
    warmup_epochs: float = 1.0
    seed: int = 0
    head: HeadKind = "context"
    device: str = "cpu"
    # Early stopping: with held-out rows, stop once their loss has not improved for this many
    # epochs and keep the best epoch's weights (None: train all epochs).
    patience: int | None = None


@dataclass(frozen=True)
class TrainProgress:
    """Reported after every optimiser step; ``fold`` is None outside cross-validation."""

    fold: int | None
    epoch: int
    step: int
    total_steps: int
    loss: float


ProgressFn = Callable[[TrainProgress], None]


def build_head(kind: HeadKind, in_dim: int, num_classes: int) -> nn.Module:
    if kind == "context":
        return SpiderContextHead(in_dim, num_classes)
    if kind == "centre":
        return CentreLinearHead(in_dim, num_classes)
    raise ValueError(f"unknown head kind {kind!r}; use 'context' or 'centre'")


def _take(array: Any, index: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows ``index`` of a tensor, array or np.memmap as float32 on ``device``."""
    if isinstance(array, torch.Tensor):
        rows = array[torch.as_tensor(index, device=array.device)]
    else:
        rows = torch.from_numpy(np.ascontiguousarray(array[index]))
    return rows.to(device=device, dtype=torch.float32, non_blocking=True)


def _take_mask(blank: Any | None, index: np.ndarray, device: torch.device) -> torch.Tensor | None:
    if blank is None:
        return None
    rows = blank[index] if isinstance(blank, np.ndarray) else blank[torch.as_tensor(index)]
    return torch.as_tensor(rows, dtype=torch.bool).to(device)


def _lr_lambda(warmup_steps: int, total_steps: int) -> Callable[[int], float]:
    """Linear warm-up to the base lr, then cosine annealing to zero (per optimiser step)."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor


def train_head(
    embeddings: Any,
    labels: Any,
    *,
    num_classes: int,
    blank: Any | None = None,
    config: TrainConfig = TrainConfig(),
    head: nn.Module | None = None,
    indices: np.ndarray | None = None,
    progress: ProgressFn | None = None,
    fold: int | None = None,
    held: np.ndarray | None = None,
    history: list[float] | None = None,
) -> nn.Module:
    """Train (a fresh or the given) head on rows ``indices`` (default all labelled rows).

    With ``held`` rows and ``config.patience``, training stops early on their loss (plain
    cross-entropy, no smoothing) and the best epoch's weights are kept; ``history`` (if
    given) receives that held-out loss after every epoch.

    ``embeddings`` is (N, 25, D) or (N, D), float16 is fine (a tensor, array or memmap);
    ``blank`` (N, 25) bool marks missing context tiles; labels of -1 are skipped. The same
    seed gives bit-identical weights on the same machine: RNG streams are forked and seeded.
    """
    y_all = np.asarray(labels, dtype=np.int64)
    rows = np.arange(len(y_all)) if indices is None else np.asarray(indices, dtype=np.int64)
    rows = rows[y_all[rows] >= 0]
    if len(rows) == 0:
        raise ValueError("no labelled rows to train on")
    device = torch.device(config.device)
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        if head is None:
            head = build_head(config.head, int(embeddings.shape[-1]), num_classes)
        head.to(device).train()
        _fit(head, embeddings, y_all, blank, rows, config, device, progress, fold,
             _labelled(held, y_all), history)
    return head.eval()


def _labelled(rows: np.ndarray | None, y_all: np.ndarray) -> np.ndarray | None:
    if rows is None:
        return None
    rows = np.asarray(rows, dtype=np.int64)
    rows = rows[y_all[rows] >= 0]
    return rows if len(rows) else None


@torch.inference_mode()
def _held_loss(head: nn.Module, embeddings: Any, y_all: np.ndarray, blank: Any | None,
               rows: np.ndarray, device: torch.device) -> float:
    head.eval()
    total = 0.0
    for start in range(0, len(rows), 1024):
        batch = rows[start : start + 1024]
        logits = head(_take(embeddings, batch, device), _take_mask(blank, batch, device))
        target = torch.from_numpy(y_all[batch]).to(device)
        total += float(nn.functional.cross_entropy(logits.float(), target, reduction="sum"))
    head.train()
    return total / len(rows)


def _fit(
    head: nn.Module,
    embeddings: Any,
    y_all: np.ndarray,
    blank: Any | None,
    rows: np.ndarray,
    config: TrainConfig,
    device: torch.device,
    progress: ProgressFn | None,
    fold: int | None,
    held: np.ndarray | None = None,
    history: list[float] | None = None,
) -> None:
    steps_per_epoch = math.ceil(len(rows) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, round(config.warmup_epochs * steps_per_epoch))
    optimiser = torch.optim.AdamW(head.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, _lr_lambda(warmup, total))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    shuffle = np.random.default_rng(config.seed)
    use_amp = device.type == "cuda"
    step = 0
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    since_best = 0
    for epoch in range(config.epochs):
        order = rows[shuffle.permutation(len(rows))]
        for start in range(0, len(order), config.batch_size):
            batch = order[start : start + config.batch_size]
            x = _take(embeddings, batch, device)
            mask = _take_mask(blank, batch, device)
            target = torch.from_numpy(y_all[batch]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = loss_fn(head(x, mask).float(), target)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            if progress is not None:
                progress(TrainProgress(fold, epoch, step, total, float(loss.detach())))
        if held is None or config.patience is None:
            continue
        held_loss = _held_loss(head, embeddings, y_all, blank, held, device)
        if history is not None:
            history.append(held_loss)
        if best is None or held_loss < best[0]:
            best = (held_loss, {k: v.detach().clone() for k, v in head.state_dict().items()})
            since_best = 0
        else:
            since_best += 1
            if since_best >= config.patience:
                break
    if best is not None:
        head.load_state_dict(best[1])


@torch.inference_mode()
def predict_probs(
    head: nn.Module,
    embeddings: Any,
    *,
    blank: Any | None = None,
    indices: np.ndarray | None = None,
    batch_size: int = 1024,
    device: str = "cpu",
) -> np.ndarray:
    """Softmax probabilities (len(indices), C) as float32, in ``indices`` order."""
    dev = torch.device(device)
    head.to(dev).eval()
    rows = np.arange(int(embeddings.shape[0])) if indices is None else np.asarray(indices)
    out = []
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        logits = head(_take(embeddings, batch, dev), _take_mask(blank, batch, dev))
        out.append(logits.float().softmax(dim=-1).cpu().numpy())
    if not out:
        return np.zeros((0, int(getattr(head, "num_classes", 0))), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def assign_folds(slide_ids: Any, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Fold number per patch such that all patches of a slide share one fold.

    Slides go, largest first (ties in seeded random order), to the fold with fewest patches,
    which keeps folds balanced even when slide sizes vary a lot.
    """
    slides = np.asarray(slide_ids)
    unique, inverse, counts = np.unique(slides, return_inverse=True, return_counts=True)
    if len(unique) < 2:
        raise ValueError(f"need at least 2 slides for grouped folds, got {len(unique)}")
    folds = min(folds, len(unique))
    tiebreak = np.random.default_rng(seed).permutation(len(unique))
    order = np.lexsort((tiebreak, -counts))
    load = np.zeros(folds, dtype=np.int64)
    slide_fold = np.empty(len(unique), dtype=np.int64)
    for slide in order:
        target = int(load.argmin())
        slide_fold[slide] = target
        load[target] += counts[slide]
    return slide_fold[inverse]


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold probabilities and, with early stopping, each fold's held-out loss curve."""

    probs: np.ndarray  # (N, C)
    held_loss: list[list[float]]  # per fold, per epoch trained (empty without early stopping)

    @property
    def best_epochs(self) -> list[int]:
        """Per fold, the epoch count whose weights were kept (1-based)."""
        return [int(np.argmin(curve)) + 1 for curve in self.held_loss if curve]

    @property
    def loss(self) -> float | None:
        """Mean held-out cross-entropy at the kept epochs, over folds."""
        best = [min(curve) for curve in self.held_loss if curve]
        return float(np.mean(best)) if best else None


def out_of_fold_fit(
    embeddings: Any,
    labels: Any,
    slide_ids: Any,
    *,
    num_classes: int,
    blank: Any | None = None,
    folds: int = 5,
    config: TrainConfig = TrainConfig(),
    progress: ProgressFn | None = None,
) -> OutOfFold:
    """Probabilities where each patch is predicted by a head that never saw its slide.

    Label-quality scores need these: a head scoring patches it trained on mostly repeats
    their labels back. Unlabelled patches (-1) are predicted too but never trained on. With
    ``config.patience`` each fold stops early on its held-out slides' loss.
    """
    fold_of = assign_folds(slide_ids, folds, config.seed)
    probs = np.zeros((len(fold_of), num_classes), dtype=np.float32)
    curves: list[list[float]] = []
    for fold in range(int(fold_of.max()) + 1):
        held = np.flatnonzero(fold_of == fold)
        train_rows = np.flatnonzero(fold_of != fold)
        curve: list[float] = []
        head = train_head(
            embeddings,
            labels,
            num_classes=num_classes,
            blank=blank,
            config=config,
            indices=train_rows,
            progress=progress,
            fold=fold,
            held=held if config.patience is not None else None,
            history=curve,
        )
        curves.append(curve)
        probs[held] = predict_probs(
            head, embeddings, blank=blank, indices=held, device=config.device
        )
    return OutOfFold(probs, curves)


def out_of_fold_probs(embeddings: Any, labels: Any, slide_ids: Any, **kwargs: Any) -> np.ndarray:
    """(N, C) out-of-fold probabilities (see :func:`out_of_fold_fit`)."""
    return out_of_fold_fit(embeddings, labels, slide_ids, **kwargs).probs
