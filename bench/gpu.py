"""Every GPU figure in one go, under a time budget: forward eager and compiled, the PNG ->
embedding pipeline, PNG decoding alone and the context head, and their ratios.

On one H100/H200 (the default): Hibou-L architecture (random weights) in bf16, batch 256,
8,192 PNG tiles, medians of 3 rounds, the pipeline with the planned DataLoader decoders and
then with thread decoders. The goal printed at the end: pipeline >= 0.90 of the fastest
forward pass in the same run. Tiles are written once (in parallel) and shared by all runs.

A guard keeps the whole run inside --budget seconds (default 450 s, under the 8 minutes a
device check gets): a phase whose estimate (from the phases before it) no longer fits is
skipped and named, and an alarm stops the script at the budget whatever happens (say, a
compile that hangs), printing what was measured.

    python bench/gpu.py                      # on the GPU machine
    python bench/gpu.py --cpu --quick        # end to end on a CPU: color-texture, 256 tiles
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import FrameType

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.inference_bench import Rates, Setup, best_forward, loadavg, measure, write_tiles
from inference.modeling import create_backbone
from inference.modeling.pipeline import plan_decoding, usable_cores

_START = time.monotonic()
_SUMMARY: list[str] = []


def elapsed() -> float:
    return time.monotonic() - _START


def say(line: str) -> None:
    print(f"[{elapsed():6.1f} s] {line}", flush=True)


def _write_part(args: tuple[str, int, int, int]) -> list[tuple[int, Path]]:
    folder, count, size, seed = args
    part = Path(folder) / f"part{seed}"
    part.mkdir()
    return write_tiles(part, count, size, seed=seed)


def write_all(folder: Path, count: int, size: int) -> list[tuple[int, Path]]:
    """``count`` PNG tiles written by every core (serially, 8,192 tiles took ~40 s)."""
    procs = max(1, min(16, usable_cores()))
    share = -(-count // procs)
    jobs = [(str(folder), min(share, count - i * share), size, i) for i in range(procs)
            if count - i * share > 0]
    with ProcessPoolExecutor(len(jobs)) as pool:
        parts = list(pool.map(_write_part, jobs))
    return [(i, path) for i, (_, path) in enumerate(p for part in parts for p in part)]


def on_alarm(signum: int, frame: FrameType | None) -> None:
    say("TIME BUDGET REACHED: stopping here; figures so far:")
    for line in _SUMMARY:
        print(line)
    os._exit(3)


def summarise(title: str, setup: Setup, rates: Rates) -> float:
    """Print one phase's figures; returns pipeline / fastest forward."""
    fastest = best_forward(rates)
    ratio = rates.ratio("pipeline", fastest)
    lines = [f"== {title}: decoder={setup.plan.decoder} decoders={setup.plan.decoders} "
             f"batch={setup.batch_size} tiles={setup.tiles}"]
    for name in rates.rates:
        unit = {"pipeline": "tiles/s", "decode": "tiles/s", "head": "patches/s"}.get(
            name, "images/s")
        lines.append(f"   {name:26s}{rates.median(name):12.1f} {unit}")
    lines.append(f"   pipeline / fastest forward ({fastest}) = {ratio:.2f}   "
                 f"pipeline / decode = {rates.ratio('pipeline', 'decode'):.2f}")
    lines.append(f"   load per round: {' | '.join(rates.loads)}")
    for line in lines:
        print(line, flush=True)
    _SUMMARY.extend(lines)
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--cpu", action="store_true", help="run on the CPU (no GPU here)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--budget", type=float, default=450.0, help="seconds, all phases")
    parser.add_argument("--tiles", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()

    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(int(args.budget))
    cuda = torch.cuda.is_available() and not args.cpu
    if not cuda and not args.cpu:
        raise SystemExit("no CUDA device: run with --cpu (and --quick) to smoke-test here")
    device = torch.device("cuda" if cuda else "cpu")
    name = "hibou-l" if cuda else "color-texture"
    tiles = args.tiles or (8192 if cuda and not args.quick else 1024 if cuda else 256)
    batch = 256 if cuda else 64
    say(f"device={torch.cuda.get_device_name() if cuda else f'cpu, {usable_cores()} cores'} "
        f"backbone={name} torch={torch.__version__} tiles={tiles} budget={args.budget:.0f} s "
        f"load={loadavg()}")
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
    backbone = create_backbone(name).to(device).eval()
    size = backbone.config.input_size
    ratios: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        items = write_all(Path(tmp), tiles, size)
        say(f"wrote {len(items)} PNG tiles")
        phases = [("planned decoders", None, True),  # eager + compiled, the default decoders
                  ("thread decoders", "threads", False)]
        if not cuda:  # on a CPU the planned decoders are threads: compare with processes
            phases[1] = ("process decoders", "processes", False)
        last_cost = 0.0
        for title, decoder, main_phase in phases:
            # compiled on a GPU (the fastest forward there); on a CPU only in a full run
            compile_ = not args.no_compile and (cuda or (main_phase and not args.quick))
            remaining = args.budget - elapsed()
            if last_cost and last_cost * 1.2 > remaining:
                say(f"SKIPPED {title}: ~{last_cost:.0f} s needed, {remaining:.0f} s left")
                continue
            plan = plan_decoding(device, None, decoder)
            setup = Setup(backbone, device, plan, batch, len(items), compile_)
            began = elapsed()
            rates = measure(setup, args.repeats, head=main_phase, items=items)
            last_cost = elapsed() - began
            ratios[title] = summarise(title, setup, rates)
            say(f"{title} took {last_cost:.0f} s")
    best = max(ratios.values()) if ratios else float("nan")
    verdict = "met" if best >= 0.90 else "NOT met"
    say(f"goal pipeline >= 0.90 x fastest forward: {verdict} (best {best:.2f}; "
        + ", ".join(f"{k}: {v:.2f}" for k, v in ratios.items()) + ")"
        + ("" if cuda else " -- CPU smoke run, not a GPU figure"))
    signal.alarm(0)


if __name__ == "__main__":
    main()
