"""Inference throughput, printed (not a test): where does the embedding pipeline lose time?

Prints in one run, as medians of --repeats rounds (each round times every stage once, so a
change of machine load hits all of them alike):
  (a) backbone forward alone, images/s: with every core, and on a CPU also with the torch
      threads the pipeline leaves the encoder (eager; and torch.compile with --compile),
  (b) the whole pipeline, PNG files on disk -> float16 embeddings, tiles/s,
  (c) merely decoding the same PNGs with the same decoders, tiles/s,
  (d) the context head over random cached (B, 25, D) embeddings, patches/s,
and the ratios pipeline/forward and pipeline/decode (near 1.0 = that stage is the limit),
each beside /proc/loadavg.

    python bench/inference_bench.py       # hibou-l + bf16 on CUDA, else color-texture
    python bench/inference_bench.py --backbone hibou-tiny --tiles 256 --compile
    python bench/inference_bench.py --decoder processes --workers 1   # the DataLoader path
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.modeling import SpiderContextHead, create_backbone, embed_tiles
from inference.modeling.backbones import Backbone
from inference.modeling.pipeline import (
    DecodePlan,
    decoded_batches,
    normalise,
    plan_decoding,
    torch_threads,
    usable_cores,
)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def write_tiles(folder: Path, count: int, size: int, seed: int = 0) -> list[tuple[int, Path]]:
    """Smooth random colour fields: PNG sizes closer to tissue than white noise would give."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        small = rng.integers(60, 250, size=(size // 8, size // 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((size, size), Image.Resampling.BICUBIC)
        noisy = np.asarray(img, dtype=np.int16) + rng.integers(-12, 12, size=(size, size, 3))
        path = folder / f"tile_{i:06d}.png"
        Image.fromarray(noisy.clip(0, 255).astype(np.uint8)).save(path, compress_level=6)
        items.append((i, path))
    return items


@dataclass
class Rates:
    """Median items/s per stage over the rounds, and the load beside them."""

    rates: dict[str, list[float]] = field(default_factory=dict)
    loads: list[str] = field(default_factory=list)

    def add(self, name: str, rate: float) -> None:
        self.rates.setdefault(name, []).append(rate)

    def median(self, name: str) -> float:
        return statistics.median(self.rates[name])

    def ratio(self, top: str, bottom: str) -> float:
        """Median of the per-round ratios: both sides were timed under the same load."""
        pairs = zip(self.rates[top], self.rates[bottom], strict=True)
        return statistics.median(a / b for a, b in pairs)


def timed(fn: Callable[[], int], sync: Callable[[], None]) -> float:
    start = time.perf_counter()
    n = fn()
    sync()
    return n / (time.perf_counter() - start)


@dataclass
class Setup:
    backbone: Backbone
    device: torch.device
    plan: DecodePlan
    batch_size: int
    tiles: int
    compile: bool = False

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def sync(self) -> None:
        if self.on_cuda:
            torch.cuda.synchronize()


def forward_stage(setup: Setup, compiled: bool, threads: int) -> Callable[[], int]:
    """Backbone forward over ready device batches, fed as the pipeline feeds it."""
    cfg = setup.backbone.config
    bs = setup.batch_size
    batches = max(1, setup.tiles // bs)
    model = setup.backbone.compiled() if compiled else setup.backbone.module
    images = torch.randint(0, 256, (bs, 3, cfg.input_size, cfg.input_size), dtype=torch.uint8)
    raw = bool(getattr(model, "accepts_uint8", False))
    x = images.to(setup.device) if raw else normalise(images.to(setup.device), cfg)

    def run() -> int:
        with (
            torch_threads(threads),
            torch.inference_mode(),
            torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=setup.on_cuda),
        ):
            for _ in range(batches):
                model(x)
        return batches * bs

    return run


def pipeline_stage(setup: Setup, items: list[tuple[int, Path]]) -> Callable[[], int]:
    def run() -> int:
        n = 0
        for ids, _ in embed_tiles(setup.backbone, items, batch_size=setup.batch_size,
                                  num_workers=setup.plan.decoders, decoder=setup.plan.decoder,
                                  device=setup.device, compile=setup.compile):
            n += len(ids)
        return n

    return run


def decode_stage(setup: Setup, items: list[tuple[int, Path]]) -> Callable[[], int]:
    def run() -> int:  # the pipeline's own decoders: same plan, same slices, same window
        batches = decoded_batches(items, setup.backbone.config, batch_size=setup.batch_size,
                                  plan=setup.plan, pin_memory=setup.on_cuda)
        return sum(part.shape[0] for _, parts in batches for part in parts)

    return run


def head_stage(setup: Setup) -> Callable[[], int]:
    dim = setup.backbone.config.embed_dim
    head = SpiderContextHead(dim, 24).to(setup.device).eval()
    cached = torch.randn(4096, 25, dim, dtype=torch.float16, device=setup.device)

    def run() -> int:
        with (
            torch.inference_mode(),
            torch.autocast(setup.device.type, dtype=torch.bfloat16, enabled=setup.on_cuda),
        ):
            for start in range(0, cached.shape[0], 1024):
                head(cached[start : start + 1024]).softmax(-1)
        return cached.shape[0]

    return run


def measure(setup: Setup, repeats: int, head: bool = True,
            items: list[tuple[int, Path]] | None = None) -> Rates:
    """Every stage once per round after one warm-up round; ``repeats`` rounds, over ``items``
    (PNG files written here when not given)."""
    all_cores = torch.get_num_threads() if setup.on_cuda else usable_cores()
    stages: dict[str, Callable[[], int]] = {"forward": forward_stage(setup, False, all_cores)}
    if not setup.on_cuda and setup.plan.torch_threads != all_cores:
        stages["forward_pipeline_threads"] = forward_stage(setup, False,
                                                           setup.plan.torch_threads)
    if setup.compile:
        stages["forward_compiled"] = forward_stage(setup, True, all_cores)
    rates = Rates()
    with tempfile.TemporaryDirectory() as tmp:
        if items is None:
            items = write_tiles(Path(tmp), setup.tiles, setup.backbone.config.input_size)
        stages["pipeline"] = pipeline_stage(setup, items)
        stages["decode"] = decode_stage(setup, items)
        if head:
            stages["head"] = head_stage(setup)
        for fn in stages.values():  # warm-up: page cache, compilation, allocator
            fn()
            setup.sync()
        for _ in range(repeats):
            for name, fn in stages.items():
                rates.add(name, timed(fn, setup.sync))
            rates.loads.append(loadavg())
    return rates


def best_forward(rates: Rates) -> str:
    return max((n for n in rates.rates if n.startswith("forward")), key=rates.median)


def report(setup: Setup, rates: Rates) -> None:
    labels = {
        "forward": f"(a) forward, eager, {'all' if setup.on_cuda else usable_cores()} threads",
        "forward_pipeline_threads": f"(a) forward, eager, {setup.plan.torch_threads} thread(s)",
        "forward_compiled": "(a) forward, compiled",
        "pipeline": "(b) pipeline PNG->emb",
        "decode": "(c) PNG decode only",
        "head": "(d) head over cache",
    }
    units = {"pipeline": "tiles/s", "decode": "tiles/s", "head": "patches/s"}
    for name in rates.rates:
        print(f"{labels[name] + ':':40s}{rates.median(name):10.1f} {units.get(name, 'images/s')}")
    fastest = best_forward(rates)
    print(f"pipeline / fastest forward ({fastest}) = {rates.ratio('pipeline', fastest):.2f}   "
          f"pipeline / decode = {rates.ratio('pipeline', 'decode'):.2f}")
    print(f"load average per round: {' | '.join(rates.loads)}")


def build_setup(args: argparse.Namespace) -> Setup:
    device = torch.device(args.device)
    backbone = create_backbone(args.backbone).to(device).eval()
    plan = plan_decoding(device, args.workers, args.decoder)
    return Setup(backbone, device, plan, args.batch_size, args.tiles, args.compile)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--backbone", default="hibou-l" if cuda else "color-texture")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--tiles", type=int, default=2048 if cuda else 256)
    parser.add_argument("--batch-size", type=int, default=256 if cuda else 64)
    parser.add_argument("--workers", type=int, default=None, help="decoders (default: planned)")
    parser.add_argument("--decoder", choices=("threads", "processes"), default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    setup = build_setup(args)
    cfg = setup.backbone.config
    print(
        f"backbone={cfg.name} dim={cfg.embed_dim} device={setup.device} "
        f"({torch.cuda.get_device_name() if setup.on_cuda else f'{usable_cores()} cores'}) "
        f"batch={setup.batch_size} decoder={setup.plan.decoder} decoders={setup.plan.decoders} "
        f"torch_threads={setup.plan.torch_threads} tiles={setup.tiles} repeats={args.repeats} "
        f"precision={'bf16 autocast' if setup.on_cuda else 'fp32'} load={loadavg()}"
    )
    report(setup, measure(setup, args.repeats))


if __name__ == "__main__":
    main()
