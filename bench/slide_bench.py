"""Whole-slide tiling speed against bare ``read_region`` of the same tiles, and peak memory.

In one run, for each slide:
  1. ``manage.py import_slide`` into a fresh project in a child process (its own peak RSS),
  2. the floor: the same tissue tiles read with OpenSlide's ``read_region`` alone, on the
     same number of threads, nothing else done with them (no scaling, PNG, hash, store, DB).
The slides are the real sample (``cmu_small_region.svs``, Aperio JPEG, 43 tissue tiles) and
two generated pyramidal tiled TIFFs (deflate, 0.5 um/px, levels at 1, 4 and 16x
downsampling) that repeat the sample 4x4 and 8x8, to show memory stays flat while the
slide grows 4x.

Usage: DATABASE_URL=postgres://... python bench/slide_bench.py [--repeat 3] [--sizes 4 8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")

from bench.import_bench import PEAK_WRAPPER  # noqa: E402 (child peak RSS, same method)

TILE = 256  # TIFF tile size of the generated slides


def generated_slide(repeat: int, folder: Path) -> Path:
    """A pyramidal tiled TIFF repeating the sample ``repeat`` x ``repeat`` times (cached)."""
    import tifffile
    from PIL import Image

    from annotations.sample_data import sample_image_path

    path = folder / f"sample-x{repeat}-pyramid.tif"
    if path.is_file():
        return path
    with Image.open(sample_image_path()) as image:
        rgb = np.asarray(image.convert("RGB"))
    height, width = rgb.shape[:2]

    def tiles(shape: tuple[int, int, int], step: int):
        for y in range(0, shape[0], TILE):
            for x in range(0, shape[1], TILE):
                rows = (np.arange(y, y + TILE) * step) % height
                cols = (np.arange(x, x + TILE) * step) % width
                yield rgb[rows][:, cols]

    full = (height * repeat, width * repeat, 3)
    partial = path.with_suffix(".part")
    with tifffile.TiffWriter(partial, bigtiff=True) as tiff:
        tiff.write(tiles(full, 1), shape=full, dtype=np.uint8, tile=(TILE, TILE),
                   compression="adobe_deflate", photometric="rgb",
                   resolution=(1e4 / 0.5, 1e4 / 0.5), resolutionunit="CENTIMETER")
        for step in (4, 16):  # a pyramid like a scanner's (Aperio: 4x, 16x, ...)
            reduced = (full[0] // step, full[1] // step, 3)
            tiff.write(tiles(reduced, step), shape=reduced, dtype=np.uint8, tile=(TILE, TILE),
                       compression="adobe_deflate", photometric="rgb", subfiletype=1)
    partial.rename(path)
    return path


def run_import(path: Path) -> tuple[float, float, dict, int]:
    """(seconds of the command, seconds of its job, report, peak RSS MiB) of
    ``manage.py import_slide`` in a child process; the job's own time leaves out the
    process start (Django set-up, system checks), which small slides would be all about."""
    slug = f"bench-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-c", PEAK_WRAPPER, str(ROOT / "manage.py"), "import_slide",
           str(path), "--project", slug, "--json"]
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    errors = done.stderr.decode()
    if done.returncode:
        raise RuntimeError(f"import failed: {errors[-2000:]}")
    peak_kib = int(re.findall(r"^VmHWM (\d+)$", errors, re.M)[-1])
    report = json.loads(done.stdout.decode())["slides"][0]
    job = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "shell", "-v", "0", "-c",
         "from annotations.models import ImportJob, Project; "
         f"j = ImportJob.objects.get(project__slug='{slug}'); "
         "print((j.finished_at - j.started_at).total_seconds()); "
         f"Project.objects.filter(slug='{slug}').delete()"],
        check=True, cwd=ROOT, capture_output=True)
    return seconds, float(job.stdout.decode().split()[-1]), report, peak_kib // 1024


def tissue_cells(path: Path) -> tuple[list[tuple[int, int]], int]:
    """The cells import_slide keeps, and the level-0 tile size (computed as it does)."""
    from django.conf import settings

    from annotations.importing.slides import open_slide, read_geometry, tissue_cells
    from annotations.importing.tissue import tissue_map

    slide = open_slide(path)
    geometry = read_geometry(slide, path, name="bench", mpp=None)
    tissue = tissue_map(slide, geometry.tile_px, geometry.cols, geometry.rows, geometry.mpp)
    cells = tissue_cells(tissue, settings.SPIDER_SLIDE_MIN_TISSUE)
    slide.close()
    return cells, geometry.tile_px


def bare_reads(path: Path, cells: list[tuple[int, int]], tile_px: int, threads: int) -> float:
    """Seconds to ``read_region`` every cell, on ``threads`` threads, in a fresh handle."""
    import openslide

    slide = openslide.OpenSlide(str(path))
    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda c: slide.read_region((c[1] * tile_px, c[0] * tile_px), 0,
                                                  (tile_px, tile_px)), cells))
    seconds = time.perf_counter() - start
    slide.close()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="*", default=[4, 8],
                        help="generated slides repeating the sample N x N times")
    args = parser.parse_args()
    import django

    django.setup()
    from annotations.importing.slides import default_threads
    from annotations.sample_data import cache_dir, sample_image_path

    threads = default_threads()
    slides = [sample_image_path()] + [generated_slide(n, cache_dir()) for n in args.sizes]
    print(f"{os.cpu_count()} cores, {threads} tiling threads, median of {args.repeat} runs")
    print(f"{'slide':<28}{'tiles':>8}{'import/s':>10}{'floor/s':>10}{'ratio':>8}"
          f"{'peak RSS':>10}")
    for path in slides:
        cells, tile_px = tissue_cells(path)
        commands, jobs, floors, peaks = [], [], [], []
        for _ in range(args.repeat):
            seconds, job_seconds, report, peak = run_import(path)
            assert report["patches_created"] == len(cells), report
            commands.append(len(cells) / seconds)
            jobs.append(len(cells) / job_seconds)
            peaks.append(peak)
            floors.append(len(cells) / bare_reads(path, cells, tile_px, threads))
        rate, floor = statistics.median(jobs), statistics.median(floors)
        print(f"{path.name:<28}{len(cells):>8}{rate:>10.0f}{floor:>10.0f}"
              f"{rate / floor:>8.2f}{max(peaks):>7} MiB"
              f"   (whole command {statistics.median(commands):.0f} tiles/s)")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory():
        main()
