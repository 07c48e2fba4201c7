"""PNG tiles on disk -> backbone embeddings, batched and overlapped for throughput.

Decoders (the CPU-bound part) run while the device encodes: a bounded window of batches is
decoded ahead of the encoder, so the two stages overlap instead of adding up. On a GPU the
decoders are DataLoader worker processes; on a CPU they are threads of this process (PIL and
zlib release the GIL) and the cores are split between them and the encoder's torch threads
(:func:`plan_decoding`), because oversubscribed cores serialise the two stages again.
Decoders hand over uint8 tensors and normalisation happens on the device: a quarter of the
bytes through pinned memory and PCIe compared with float32, and no float work on the CPU.
Every batch has the same shape (the ragged tail is padded) so ``torch.compile`` compiles once.
Decoders work on small slices of a batch (``LOADER_BATCH`` tiles), copied into one device
buffer: the first batch is ready when every decoder has decoded one slice, not when one has
decoded a whole batch, which on an H100 cost ~1 s of an 8192-tile run. Each batch's result is
read back only after the next batch is queued, so the device does not wait for the host.
"""

from __future__ import annotations

import errno
import logging
import multiprocessing
import os
import stat
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from math import ceil
from pathlib import Path
from typing import BinaryIO, TypeVar

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from .backbones import Backbone, BackboneConfig

log = logging.getLogger(__name__)

TileId = TypeVar("TileId")  # whatever the caller keys its tiles by, handed back unchanged
T = TypeVar("T")
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


def open_tile_file(path: str | Path) -> BinaryIO:
    """The tile file at ``path`` (resolved when the tile was stored), opened without blocking
    and refused unless it is a regular file at exactly that path: a FIFO put in a linked
    tile's place would hang the worker, and a symbolic link, in the file's place or in a
    folder's on the way, could point anywhere. The same rule as
    ``annotations.localfiles.open_regular(exact=True)``, written again here because this
    package imports nothing of the project (tests/test_layers.py)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
        try:
            real: str | None = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: resolve by name, and check it is still this file
            real = os.path.realpath(path)
            if not os.path.samestat(os.stat(real), status):
                real = None
        if real != os.path.abspath(path):
            raise OSError(errno.ELOOP, "reached through a symbolic link, not at its recorded "
                                       "path", str(path))
    except BaseException:
        os.close(fd)
        raise
    return os.fdopen(fd, "rb")


def read_tile(path: str | Path, size: int, interpolation: str = "bicubic") -> torch.Tensor:
    """(3, size, size) uint8 RGB; resized only when the file is not already size x size."""
    try:
        with open_tile_file(path) as handle, Image.open(handle) as img:
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

    One multiply and one subtract per channel, in place ((x/255 - m)/s = x*(1/(255 s)) - m/s):
    half the passes of dividing and normalising separately, which on a CPU cost as much as a
    third of the colour/texture encoder. The constants stay Python scalars: a device tensor
    built from host data is a blocking copy, which would make the host wait for the device's
    previous batch every time.
    """
    x = images.float()
    for c, (mean, std) in enumerate(zip(config.mean, config.std, strict=True)):
        x[:, c].mul_(1.0 / (255.0 * std)).sub_(mean / std)
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


def usable_cores() -> int:
    """Cores this process may run on (a container's or ``taskset``'s cpuset, not the host's
    count that ``os.cpu_count`` reports)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def cpu_budget() -> int:
    """Cores embedding may keep busy: the usable cores, or fewer when the operator capped
    threads with ``OMP_NUM_THREADS`` (say, one per worker process when several share a host)."""
    cores = usable_cores()
    capped = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(cores, int(capped))) if capped.isdigit() and int(capped) > 0 else cores


@dataclass(frozen=True)
class DecodePlan:
    """Who decodes PNGs and how many torch threads the encoder gets.

    ``decoder`` is ``"processes"`` (DataLoader workers, pinned memory: what keeps a GPU fed
    from 12 cores) or ``"threads"`` (a pool in this process: PIL and zlib release the GIL,
    there is no start-up or IPC cost, and it works in a daemonic Celery child too).
    """

    decoder: str
    decoders: int
    torch_threads: int


def plan_decoding(device: torch.device, decoders: int | None = None,
                  decoder: str | None = None) -> DecodePlan:
    """The split of this machine's cores between PNG decoding and the encoder.

    On a GPU the device encodes, so all but one core decode (at most 12: what fed a compiled
    Hibou-L on an H100 best; 8 left it decode-bound, 15 oversubscribed the cores that also
    feed the GPU). On a CPU the encoder and the decoders share the cores, so they are split
    between them: half each (decoding a 224 px PNG and the colour/texture encoder cost about
    the same per tile). Giving torch every core besides running decoders oversubscribes them,
    and OpenMP's spinning threads then make the two stages run one after the other: on 2 cores
    that was 0.44 of the bare decode rate instead of the ~0.8 of an even split.
    """
    cores = cpu_budget()
    on_cuda = device.type == "cuda"
    kind = decoder or ("processes" if on_cuda else "threads")
    if kind not in ("processes", "threads"):
        raise ValueError(f"decoder must be 'processes' or 'threads', not {kind!r}")
    if decoders is None:
        decoders = max(1, min(12, cores - 1)) if on_cuda else cores // 2
    if kind == "processes" and decoders and multiprocessing.current_process().daemon:
        # Celery prefork children are daemonic and may not start processes of their own.
        log.warning("embed_tiles: running in a daemonic process, decoding in threads")
        kind = "threads"
    threads = torch.get_num_threads() if on_cuda else max(1, cores - decoders)
    return DecodePlan(kind, decoders, threads)


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Run with ``count`` intra-op threads, then give the process its old count back."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if count != before:
            torch.set_num_threads(before)


def _chunks(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def decode_slice(paths: Sequence[str | Path], config: BackboneConfig,
                 pin_memory: bool = False) -> torch.Tensor:
    """(n, 3, S, S) uint8 of ``paths``, decoded into one tensor (no per-tile stacking)."""
    out = torch.empty((len(paths), 3, config.input_size, config.input_size), dtype=torch.uint8)
    for i, path in enumerate(paths):
        out[i] = read_tile(path, config.input_size, config.interpolation)
    return out.pin_memory() if pin_memory else out


# A batch ready for the device: its items and its decoded slices, in order.
_Batch = tuple[list[tuple[TileId, str | Path]], list[torch.Tensor]]


def _process_batches(
    items: Iterable[tuple[TileId, str | Path]], cfg: BackboneConfig, *, batch_size: int,
    workers: int, pin_memory: bool, chunk_batches: int,
) -> Iterator[_Batch[TileId]]:
    """Batches decoded by DataLoader worker processes.

    ``items`` is read in chunks of ``chunk_batches`` batches, and the next chunk's workers
    start decoding while the current chunk is still being consumed, so the device never waits
    at a boundary.
    """
    def loader(chunk: list[tuple[TileId, str | Path]]) -> _Slices:
        paths = [path for _, path in chunk]
        return iter(tile_loader(paths, cfg, batch_size=batch_size, num_workers=workers,
                                pin_memory=pin_memory))

    chunks = _chunks(items, batch_size * chunk_batches)
    current = next(chunks, None)
    pending = loader(current) if current is not None else None
    while current is not None:
        slices = pending
        assert slices is not None  # built from ``current``, which is not None
        following = next(chunks, None)
        pending = loader(following) if following is not None else None  # starts its workers
        for batch in _chunks(current, batch_size):
            parts, filled = [], 0
            while filled < len(batch):  # this batch's slices, in order (never straddling)
                _, part = next(slices)
                parts.append(part)
                filled += len(part)
            yield batch, parts
        current = following


def _thread_batches(
    items: Iterable[tuple[TileId, str | Path]], cfg: BackboneConfig, *, batch_size: int,
    workers: int, pin_memory: bool, ahead: int = 3,
) -> Iterator[_Batch[TileId]]:
    """Batches decoded by a thread pool, at most ``ahead`` batches beyond the one consumed.

    The window is the bounded queue between the stages: decoders never run more than
    ``ahead`` batches ahead of the encoder (memory stays flat over millions of tiles) and the
    encoder finds the next batch decoded while it encoded this one. No decoders: inline.
    """
    part = min(batch_size, LOADER_BATCH)
    if workers == 0:
        for batch in _chunks(items, batch_size):
            paths = [path for _, path in batch]
            yield batch, [decode_slice(paths, cfg, pin_memory)]
        return
    window: deque[tuple[list[tuple[TileId, str | Path]], list[Future[torch.Tensor]]]] = deque()
    with ThreadPoolExecutor(workers, thread_name_prefix="tile-decode") as pool:
        try:
            for batch in _chunks(items, batch_size):
                paths = [path for _, path in batch]
                window.append((batch, [pool.submit(decode_slice, paths[i : i + part], cfg,
                                                   pin_memory)
                                       for i in range(0, len(paths), part)]))
                if len(window) > ahead:
                    ready, futures = window.popleft()
                    yield ready, [f.result() for f in futures]
            while window:
                ready, futures = window.popleft()
                yield ready, [f.result() for f in futures]
        finally:  # the consumer stopped early or a tile failed: drop what is still queued
            for _, futures in window:
                for f in futures:
                    f.cancel()


def decoded_batches(
    items: Iterable[tuple[TileId, str | Path]], cfg: BackboneConfig, *, batch_size: int,
    plan: DecodePlan, pin_memory: bool, chunk_batches: int = 64,
) -> Iterator[_Batch[TileId]]:
    """(batch items, decoded uint8 slices) per batch, in order, decoded as ``plan`` says:
    what :func:`embed_tiles` encodes, and what a benchmark times to see the decoders alone."""
    if plan.decoder == "processes" and plan.decoders:
        return _process_batches(items, cfg, batch_size=batch_size, workers=plan.decoders,
                                pin_memory=pin_memory, chunk_batches=chunk_batches)
    return _thread_batches(items, cfg, batch_size=batch_size, workers=plan.decoders,
                           pin_memory=pin_memory)


def embed_tiles(
    backbone: Backbone,
    items: Iterable[tuple[TileId, str | Path]],
    *,
    batch_size: int = 64,
    num_workers: int | None = None,
    device: str | torch.device | None = None,
    compile: bool = False,
    chunk_batches: int = 64,
    decoder: str | None = None,
) -> Iterator[tuple[list[TileId], np.ndarray]]:
    """Yield (tile ids, float16 (n, embed_dim) embeddings) per batch, in input order.

    ``items`` may be a lazy iterable of (tile_id, png_path) (millions of rows): it is read a
    bounded window ahead of the encoder. ``num_workers`` and ``decoder`` override
    :func:`plan_decoding`'s choice of decoders for this machine.
    """
    dev = torch.device(device) if device is not None else default_device()
    plan = plan_decoding(dev, num_workers, decoder)
    backbone.to(dev).eval()
    model = backbone.compiled() if compile else backbone.module
    cfg = backbone.config
    on_cuda = dev.type == "cuda"
    takes_uint8 = bool(getattr(model, "accepts_uint8", False))
    batches = decoded_batches(items, cfg, batch_size=batch_size, plan=plan, pin_memory=on_cuda,
                              chunk_batches=chunk_batches)

    shape = (batch_size, 3, cfg.input_size, cfg.input_size)

    def finish(done: _Done[TileId]) -> tuple[list[TileId], np.ndarray]:
        ids, emb, ready = done
        if ready is not None:
            ready.synchronize()
        return ids, emb.numpy().copy()  # copied out of pinned memory, which is scarce

    previous: _Done[TileId] | None = None
    with torch_threads(plan.torch_threads):
        for batch, parts in batches:
            n = len(batch)
            if not on_cuda and len(parts) == 1 and n == batch_size:
                images = parts[0]  # already one full batch on the host: no copy
            else:
                images = torch.empty(shape, dtype=torch.uint8, device=dev)
                filled = 0
                for part in parts:
                    images[filled : filled + len(part)].copy_(part, non_blocking=on_cuda)
                    filled += len(part)
                if n < batch_size:  # fixed shapes: pad the ragged tail, drop it from the output
                    images[n:].zero_()
            x = images if takes_uint8 else normalise(images, cfg)
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
    if previous is not None:
        yield finish(previous)
