"""PNG tiles on disk -> backbone embeddings, batched and overlapped for throughput.

Worker processes decode PNGs (the CPU-bound part) while the device runs the backbone.
Workers hand over uint8 tensors and normalisation happens on the device: a quarter of the
bytes through pinned memory and PCIe compared with float32, and no float work on the CPU.
Every batch has the same shape (the ragged tail is padded) so ``torch.compile`` compiles once.
Workers decode small slices of a batch (``LOADER_BATCH`` tiles), copied into one device buffer:
the first batch is ready when every worker has decoded one slice, not when one worker has
decoded a whole batch, which on an H100 cost ~1 s of an 8192-tile run. Each batch's result is
read back only after the next batch is queued, so the device does not wait for the host.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from math import ceil
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .backbones import Backbone, BackboneConfig

log = logging.getLogger(__name__)

TileId = TypeVar("TileId")  # whatever the caller keys its tiles by, handed back unchanged
# A loader's slices: (positions, uint8 images), collated.
_Slices = Iterator[tuple[torch.Tensor, torch.Tensor]]
# A batch queued on the device: its tile ids, its embeddings, and the event marking them ready.
_Done = tuple[list[TileId], torch.Tensor, torch.cuda.Event | None]

LOADER_BATCH = 32  # tiles per worker batch; model batches are assembled from these slices

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}


class TileReadError(RuntimeError):
    """A tile could not be decoded; the message starts with its path."""


def read_tile(path: str | Path, size: int, interpolation: str = "bicubic") -> torch.Tensor:
    """(3, size, size) uint8 RGB; resized only when the file is not already size x size."""
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
            if rgb.size != (size, size):
                rgb = rgb.resize((size, size), _RESAMPLE[interpolation])
            array = np.asarray(rgb, dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise TileReadError(f"{path}: cannot read tile ({type(exc).__name__}: {exc})") from exc
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


class TileDataset(Dataset[tuple[int, torch.Tensor]]):
    """Map-style dataset over tile paths yielding (position, uint8 image)."""

    def __init__(self, paths: Sequence[str | Path], config: BackboneConfig) -> None:
        self.paths = list(paths)
        self.size = config.input_size
        self.interpolation = config.interpolation

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor]:
        return index, read_tile(self.paths[index], self.size, self.interpolation)


def normalise(images: torch.Tensor, config: BackboneConfig) -> torch.Tensor:
    """uint8 (B, 3, H, W) -> float normalised with the backbone's mean/std (ToTensor+Normalize).

    The constants stay Python scalars: a device tensor built from host data is a blocking copy,
    which would make the host wait for the device's previous batch every time.
    """
    x = images.float() / 255.0
    for c, (mean, std) in enumerate(zip(config.mean, config.std, strict=True)):
        x[:, c].sub_(mean).div_(std)
    return x


def tile_loader(
    paths: Sequence[str | Path],
    config: BackboneConfig,
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
) -> DataLoader[tuple[int, torch.Tensor]]:
    """Yields (positions, uint8 images) slices of at most ``LOADER_BATCH`` tiles, in order.

    Slices never straddle a ``batch_size`` boundary, so ``ceil(batch_size / LOADER_BATCH)``
    consecutive slices make one model batch (fewer for the ragged tail).
    """
    part = min(batch_size, LOADER_BATCH)
    slices = [
        list(range(i, min(i + part, start + batch_size, len(paths))))
        for start in range(0, len(paths), batch_size)
        for i in range(start, min(start + batch_size, len(paths)), part)
    ]
    return DataLoader(
        TileDataset(paths, config),
        batch_sampler=slices,
        num_workers=num_workers,
        pin_memory=pin_memory,
        # as many tiles in flight per worker as 4 whole batches
        prefetch_factor=4 * ceil(batch_size / part) if num_workers else None,
    )


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_workers() -> int:
    if multiprocessing.current_process().daemon:
        # Celery prefork children are daemonic and may not start processes of their own.
        log.warning("embed_tiles: running in a daemonic process, decoding in-process")
        return 0
    # 12 decoders kept a compiled Hibou-L on an H100 fed best (16 cores: 8 left it
    # decode-bound, 15 oversubscribed the cores that also feed the GPU).
    return max(1, min(12, (os.cpu_count() or 2) - 1))


def _chunks(
    items: Iterable[tuple[TileId, str | Path]], size: int
) -> Iterator[list[tuple[TileId, str | Path]]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def embed_tiles(
    backbone: Backbone,
    items: Iterable[tuple[TileId, str | Path]],
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    compile: bool = False,
    chunk_batches: int = 64,
) -> Iterator[tuple[list[TileId], np.ndarray]]:
    """Yield (tile ids, float16 (n, embed_dim) embeddings) per batch, in input order.

    ``items`` may be a lazy iterable of (tile_id, png_path) (millions of rows): it is read in
    chunks of ``chunk_batches`` batches, and the next chunk's workers start decoding while
    the current chunk is still being embedded, so the device never waits at a boundary.
    """
    dev = torch.device(device) if device is not None else default_device()
    workers = default_workers() if num_workers is None else num_workers
    backbone.to(dev).eval()
    model = backbone.compiled() if compile else backbone.module
    cfg = backbone.config
    on_cuda = dev.type == "cuda"

    shape = (batch_size, 3, cfg.input_size, cfg.input_size)

    def loader(chunk: list[tuple[TileId, str | Path]]) -> _Slices:
        paths = [path for _, path in chunk]
        return iter(
            tile_loader(paths, cfg, batch_size=batch_size, num_workers=workers, pin_memory=on_cuda)
        )

    def finish(done: _Done[TileId]) -> tuple[list[TileId], np.ndarray]:
        ids, emb, ready = done
        if ready is not None:
            ready.synchronize()
        return ids, emb.numpy().copy()  # copied out of pinned memory, which is scarce

    previous: _Done[TileId] | None = None
    chunks = _chunks(items, batch_size * chunk_batches)
    current = next(chunks, None)
    pending = loader(current) if current is not None else None
    while current is not None:
        slices = pending
        assert slices is not None  # built from ``current``, which is not None
        following = next(chunks, None)
        pending = loader(following) if following is not None else None  # starts its workers
        for start in range(0, len(current), batch_size):
            batch = current[start : start + batch_size]
            n = len(batch)
            images = torch.empty(shape, dtype=torch.uint8, device=dev)
            filled = 0
            while filled < n:  # this batch's slices, in order (they never straddle batches)
                _, part = next(slices)
                images[filled : filled + len(part)].copy_(part, non_blocking=on_cuda)
                filled += len(part)
            if n < batch_size:  # fixed shapes: pad the ragged tail, drop it from the output
                images[n:].zero_()
            x = normalise(images, cfg)
            with (
                torch.inference_mode(),
                torch.autocast(dev.type, dtype=torch.bfloat16, enabled=on_cuda),
            ):
                out = model(x)
            emb = out[:n].float().to(torch.float16).to("cpu", non_blocking=on_cuda)
            ready: torch.cuda.Event | None = None
            if on_cuda:
                ready = torch.cuda.Event()  # type: ignore[no-untyped-call]  # unannotated in torch
                ready.record()
            if previous is not None:  # read back the last batch now this one is queued
                yield finish(previous)
            previous = ([tile_id for tile_id, _ in batch], emb, ready)
        current = following
    if previous is not None:
        yield finish(previous)
