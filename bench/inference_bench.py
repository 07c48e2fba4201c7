"""Inference throughput, printed (not a test): where does the embedding pipeline lose time?

Prints in one run, as medians of --repeats runs:
  (a) backbone forward alone, images/s (eager; and torch.compile with --compile),
  (b) the whole pipeline, PNG files on disk -> float16 embeddings, tiles/s,
  (c) merely decoding the same PNGs with the same worker count, tiles/s,
  (d) the context head over random cached (B, 25, D) embeddings, patches/s,
and the ratios pipeline/forward and pipeline/decode (near 1.0 = that stage is the limit).

    python bench/inference_bench.py       # hibou-l + bf16 on CUDA, else color-texture
    python bench/inference_bench.py --backbone hibou-tiny --tiles 256 --compile
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inference.modeling import SpiderContextHead, create_backbone, embed_tiles
from inference.modeling.pipeline import default_workers, normalise, tile_loader


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


def median_rate(fn: Callable[[], int], repeats: int, sync: Callable[[], None]) -> float:
    """Items/s, median over ``repeats`` timed runs after one warm-up run."""
    fn()
    sync()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        n = fn()
        sync()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    cuda = torch.cuda.is_available()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="hibou-l" if cuda else "color-texture")
    parser.add_argument("--device", default="cuda" if cuda else "cpu")
    parser.add_argument("--tiles", type=int, default=2048 if cuda else 256)
    parser.add_argument("--batch-size", type=int, default=256 if cuda else 64)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    args = parser.parse_args()

    device = torch.device(args.device)
    on_cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if on_cuda else (lambda: None)
    workers = default_workers() if args.workers is None else args.workers
    backbone = create_backbone(args.backbone).to(device).eval()
    cfg = backbone.config
    bs = args.batch_size
    print(
        f"backbone={cfg.name} dim={cfg.embed_dim} device={device} "
        f"({torch.cuda.get_device_name() if on_cuda else f'{torch.get_num_threads()} threads'}) "
        f"batch={bs} workers={workers} tiles={args.tiles} repeats={args.repeats} "
        f"precision={'bf16 autocast' if on_cuda else 'fp32'}"
    )

    batches = max(1, args.tiles // bs)
    images = torch.randint(0, 256, (bs, 3, cfg.input_size, cfg.input_size), dtype=torch.uint8)
    x = normalise(images.to(device), cfg)

    def forward(model: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], int]:
        def run() -> int:
            with (
                torch.inference_mode(),
                torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda),
            ):
                for _ in range(batches):
                    model(x)
            return batches * bs

        return run

    eager = median_rate(forward(backbone.module), args.repeats, sync)
    print(f"(a) forward, eager:      {eager:10.1f} images/s")
    best_forward = eager
    if args.compile:
        compiled = median_rate(forward(backbone.compiled()), args.repeats, sync)
        print(f"(a) forward, compiled:   {compiled:10.1f} images/s")
        best_forward = max(eager, compiled)

    with tempfile.TemporaryDirectory() as tmp:
        items = write_tiles(Path(tmp), args.tiles, cfg.input_size)

        def pipeline() -> int:
            n = 0
            for ids, _ in embed_tiles(
                backbone,
                items,
                batch_size=bs,
                num_workers=workers,
                device=device,
                compile=args.compile,
            ):
                n += len(ids)
            return n

        def decode() -> int:
            loader = tile_loader(  # the pipeline's own loader: same slices, same prefetch
                [p for _, p in items], cfg, batch_size=bs, num_workers=workers, pin_memory=on_cuda
            )
            return sum(batch.shape[0] for _, batch in loader)

        piped = median_rate(pipeline, args.repeats, sync)
        decoded = median_rate(decode, args.repeats, sync)
    print(f"(b) pipeline PNG->emb:   {piped:10.1f} tiles/s")
    print(f"(c) PNG decode only:     {decoded:10.1f} tiles/s")

    head = SpiderContextHead(cfg.embed_dim, 24).to(device).eval()
    cached = torch.randn(4096, 25, cfg.embed_dim, dtype=torch.float16, device=device)

    def head_run() -> int:
        with (
            torch.inference_mode(),
            torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda),
        ):
            for start in range(0, cached.shape[0], 1024):
                head(cached[start : start + 1024]).softmax(-1)
        return cached.shape[0]

    print(f"(d) head over cache:     {median_rate(head_run, args.repeats, sync):10.1f} patches/s")
    print(
        f"pipeline / forward = {piped / best_forward:.2f}   "
        f"pipeline / decode = {piped / decoded:.2f}"
    )


if __name__ == "__main__":
    main()
