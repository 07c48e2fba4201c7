"""Import a whole-slide image: tissue tiles on a 224 px grid at 20x become unlabelled patches.

Two phases, so that nothing is ever half-imported and progress stays visible:

1. *Cutting* (slow, no transaction): the tissue map picks the grid cells; each cell is read
   at level 0 (or the level nearest 20x), scaled to 224 px when the scan is not 20x,
   encoded as PNG and stored by content, on a thread pool (OpenSlide, zlib and hashing
   release the GIL). Only 32 bytes per tile are kept: the slide's pixels stream through.
2. *Writing* (fast, one transaction): the slide row, its tiles and one patch per tissue
   tile whose 5x5 neighbours come from the same grid (background or outside: blank).

Any error, in either phase, removes the files phase 1 stored and leaves no rows behind.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.db import transaction
from PIL import Image

from annotations import lifecycle
from annotations.models import ImportJob, Patch, Project, Slide
from annotations.models.patches import GRID_SIZE
from annotations.tilestore import delete_stored, store_tile_bytes

from .errors import SourceError
from .png import encode_rgb
from .report import ImportReport
from .roots import confinement
from .run import Progress, finish_job, job_progress, no_progress
from .tissue import TissueMap, flatten_rgba, tissue_map
from .validation import CheckedTile
from .writer import FetchedFile, ProjectWriter

if TYPE_CHECKING:
    from openslide import OpenSlide

log = logging.getLogger(__name__)

TILE = 224
PNG_LEVEL = 1  # ISA-L level (0..3): 1 is as small as zlib's 1 on 224 px tiles
WRITE_BATCH = 2000
HALF = GRID_SIZE // 2


@dataclass(frozen=True)
class SlideGeometry:
    """What the cutting needs to know of a slide file."""

    name: str
    width: int
    height: int
    mpp: float
    mpp_given: bool
    tile_px: int  # level-0 pixels per 224 px tile at the target resolution
    level: int  # pyramid level read from
    level_px: int  # pixels read at that level per tile
    vendor: str
    quickhash: str

    @property
    def cols(self) -> int:
        return self.width // self.tile_px

    @property
    def rows(self) -> int:
        return self.height // self.tile_px


def open_slide(path: Path) -> OpenSlide:
    """Open ``path`` with OpenSlide (imported here: it loads a C library), or raise
    :class:`SourceError` saying why not."""
    import openslide

    if not path.is_file():
        raise SourceError(f"{path}: no such file")
    try:
        return openslide.OpenSlide(str(path))
    except openslide.OpenSlideUnsupportedFormatError:
        with open(path, "rb") as handle:
            magic = handle.read(4)
        if magic in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
            raise SourceError(f"{path.name}: a TIFF file OpenSlide cannot read: truncated or "
                              "damaged, or a plain (untiled) TIFF rather than a slide") from None
        raise SourceError(f"{path.name}: not a whole-slide image OpenSlide can read "
                          "(supported: Aperio, Hamamatsu, Leica, MIRAX, Philips, Sakura, "
                          "Trestle, Ventana, DICOM, generic tiled TIFF)") from None
    except openslide.OpenSlideError as exc:
        raise SourceError(f"{path.name}: OpenSlide cannot open it ({exc}); the file may be "
                          "truncated or damaged") from None


def read_geometry(slide: OpenSlide, path: Path, *, name: str, mpp: float | None) -> SlideGeometry:
    """Size, resolution and the read plan: a 40x scan is read at 448 px and scaled down."""
    properties = slide.properties
    file_mpp = properties.get("openslide.mpp-x")
    if mpp is None:
        if not file_mpp:
            raise SourceError(f"{path.name}: the file gives no resolution (openslide.mpp-x); "
                              "pass --mpp with the microns per pixel of level 0")
        mpp = float(file_mpp)
    if not 0.05 <= mpp <= 20:
        raise SourceError(f"{path.name}: {mpp} microns per pixel is not a plausible scan")
    target = float(settings.SPIDER_SLIDE_MPP)
    tile_px = max(1, round(TILE * target / mpp))
    level = slide.get_best_level_for_downsample(tile_px / TILE)
    level_px = max(1, round(tile_px / slide.level_downsamples[level]))
    width, height = slide.dimensions
    if width < tile_px or height < tile_px:
        raise SourceError(f"{path.name}: {width}x{height} px is smaller than one tile "
                          f"({tile_px} px at level 0)")
    return SlideGeometry(name=name, width=width, height=height, mpp=mpp,
                         mpp_given=file_mpp is None or float(file_mpp) != mpp,
                         tile_px=tile_px, level=level, level_px=level_px,
                         vendor=properties.get("openslide.vendor", ""),
                         quickhash=properties.get("openslide.quickhash-1", ""))


def tissue_cells(tissue: TissueMap, min_tissue: float) -> list[tuple[int, int]]:
    """(row, col) of every cell with at least ``min_tissue`` tissue, row-major."""
    rows, cols = np.nonzero(tissue.fractions >= min_tissue)
    return list(zip(rows.tolist(), cols.tolist(), strict=True))


def cut_tile(slide: OpenSlide, geometry: SlideGeometry, row: int, col: int) -> bytes:
    """The 224 px PNG of one grid cell."""
    region = slide.read_region((col * geometry.tile_px, row * geometry.tile_px),
                               geometry.level, (geometry.level_px, geometry.level_px))
    pixels = np.asarray(region)
    if geometry.level_px == TILE and pixels[..., 3].min() == 255:  # opaque 20x: pixels as read
        return encode_rgb(np.ascontiguousarray(pixels[..., :3]), PNG_LEVEL)
    image = flatten_rgba(region)
    if geometry.level_px != TILE:
        image = image.resize((TILE, TILE), Image.Resampling.LANCZOS)
    return encode_rgb(np.asarray(image), PNG_LEVEL)


def default_threads() -> int:
    return max(2, min(8, (os.cpu_count() or 2)))


def cut_tiles(slide: OpenSlide, geometry: SlideGeometry, cells: list[tuple[int, int]],
              written: list[str], *, file_name: str,
              threads: int | None = None) -> Iterator[bytes]:
    """Cut and store every cell's tile, in ``cells`` order; yields each tile's sha256 digest
    (32 bytes). Work is submitted in windows so at most a few hundred tiles are in flight."""
    import openslide

    def work(cell: tuple[int, int]) -> tuple[bytes, str, bool]:
        data = cut_tile(slide, geometry, *cell)
        digest = hashlib.sha256(data).digest()
        name, new = store_tile_bytes(digest.hex(), data, "png")
        return digest, name, new

    window = 64 * (threads or default_threads())
    cell_iter = iter(cells)
    with ThreadPoolExecutor(threads or default_threads(), thread_name_prefix="slide") as pool:
        while chunk := list(islice(cell_iter, window)):
            try:
                results = list(pool.map(work, chunk))
            except openslide.OpenSlideError as exc:
                raise SourceError(f"{file_name}: reading tiles failed ({exc}); the file may "
                                  "be truncated or damaged") from None
            for digest, name, new in results:
                if new:
                    written.append(name)
                yield digest


def patch_name(geometry: SlideGeometry, row: int, col: int) -> str:
    """Patch and tile name: the slide and the tile's level-0 position, like ``x_y`` grids."""
    return f"{geometry.name}_x{col * geometry.tile_px}_y{row * geometry.tile_px}.png"


def neighbour_grid(row: int, col: int, tile_ids: dict[tuple[int, int], int]) -> list[int | None]:
    """The 25 tile ids around (row, col), row-major; None where there is no tissue tile."""
    return [tile_ids.get((row + dr, col + dc))
            for dr in range(-HALF, HALF + 1) for dc in range(-HALF, HALF + 1)]


def already_imported(project: Project, geometry: SlideGeometry, path: Path,
                     job: ImportJob | None) -> Slide | None:
    """The slide this file already became (by OpenSlide's quickhash, else its name).

    Raises :class:`SourceError` when an earlier import holds it, so a second import adds
    nothing and says so; returns the slide when this very job wrote it before its worker
    died (a resumed job then just reports what is there)."""
    found = (Slide.objects.filter(project=project, quickhash=geometry.quickhash).first()
             if geometry.quickhash else None)
    if found is None:
        found = Slide.objects.filter(project=project, name=geometry.name).first()
        if found is not None and found.quickhash != geometry.quickhash:
            raise SourceError(f"{path.name}: the project already has a different slide named "
                              f"{geometry.name!r}; pass --name to import it under another name")
    if found is None:
        return None
    if job is not None and found.patches.filter(import_job=job).exists():
        return found
    raise SourceError(f"{path.name}: already imported as slide {found.name!r} "
                      f"({found.patches.count()} patches); nothing was added")


def write_slide(project: Project, geometry: SlideGeometry, tissue: TissueMap, source: Path,
                cells: list[tuple[int, int]], digests: list[bytes], *, split: str,
                job: ImportJob | None, report: ImportReport) -> Slide:
    """Phase 2: the slide, its tiles and patches, in one transaction."""
    writer = ProjectWriter(project, job, report)
    try:
        with transaction.atomic():
            slide = Slide.objects.create(
                project=project, name=geometry.name, source_file=str(source.resolve()),
                quickhash=geometry.quickhash, vendor=geometry.vendor, width=geometry.width,
                height=geometry.height, mpp=geometry.mpp, mpp_given=geometry.mpp_given,
                tile_px=geometry.tile_px, tissue_mm2=tissue.tissue_mm2)
            tile_ids: dict[tuple[int, int], int] = {}
            for start in range(0, len(cells), WRITE_BATCH):
                files = [FetchedFile(patch_name(geometry, *cell),
                                     CheckedTile(None, digest.hex(), "", "png"))
                         for cell, digest in zip(cells[start:start + WRITE_BATCH],
                                                 digests[start:start + WRITE_BATCH],
                                                 strict=True)]
                by_name = writer.register_files(files)
                for cell, file in zip(cells[start:start + WRITE_BATCH], files, strict=True):
                    tile_ids[cell] = by_name[file.name]
            report.tiles_created = writer.tiles_created()
            report.tiles_reused = len(set(tile_ids.values())) - report.tiles_created
            for start in range(0, len(cells), WRITE_BATCH):
                patches: list[Patch] = []
                for row, col in cells[start:start + WRITE_BATCH]:
                    patch = writer.new_patch(slide_id=slide.pk, split=split,
                                             image_name=patch_name(geometry, row, col),
                                             grid=neighbour_grid(row, col, tile_ids),
                                             label_id=None)
                    patch.slide_x, patch.slide_y = col * geometry.tile_px, row * geometry.tile_px
                    patches.append(patch)
                writer.create_patches(patches)
            writer.finish()
    finally:
        writer.close()
    return slide


def import_slide(project: Project, path: str | Path, *, mpp: float | None = None,
                 min_tissue: float | None = None, split: str = "train", name: str = "",
                 job: ImportJob | None = None, progress: Progress = no_progress,
                 threads: int | None = None,
                 roots: Sequence[Path] | None = None) -> ImportReport:
    """Tile one whole-slide image into ``project``; see the module docstring. With ``roots``
    (an import from the browser) the file must lie inside them, links resolved."""
    source = Path(path)
    report = ImportReport()
    written: list[str] = []
    try:
        if split not in ("train", "test", ""):
            raise SourceError(f"split {split!r}: expected train, test or nothing")
        confined = confinement(roots)
        if confined is not None:
            source = confined.check(source, source.name)
        slide = open_slide(source)
        try:
            geometry = read_geometry(slide, source, name=name or source.stem, mpp=mpp)
            if already_imported(project, geometry, source, job) is not None:
                report.patches_existing = project.patches.filter(import_job=job).count()
                report.records = report.patches_existing
                report.slides = project.slides.count()
                finish_job(job, report)
                return report
            threshold = settings.SPIDER_SLIDE_MIN_TISSUE if min_tissue is None else min_tissue
            if job is not None:
                lifecycle.start_stage(job, "mask", unit="tiles")
            try:
                tissue = tissue_map(slide, geometry.tile_px, geometry.cols, geometry.rows,
                                    geometry.mpp)
            except Exception as exc:  # OpenSlideError from a damaged pyramid
                raise SourceError(f"{source.name}: reading the thumbnail failed ({exc}); the "
                                  "file may be truncated or damaged") from None
            cells = tissue_cells(tissue, threshold)
            if not cells:
                raise SourceError(f"{source.name}: no tile has {threshold:.0%} tissue or more "
                                  f"(saturation threshold {tissue.threshold})")
            report.records = len(cells)
            if job is not None:
                lifecycle.start_stage(job, "cutting", total=len(cells), unit="tiles")
            tick = job_progress(job, progress)
            digests: list[bytes] = []
            for digest in cut_tiles(slide, geometry, cells, written, file_name=source.name,
                                    threads=threads):
                digests.append(digest)
                if len(digests) % 64 == 0 or len(digests) == len(cells):
                    tick(len(digests), len(cells), "tiles")
        finally:
            slide.close()
        if job is not None:
            lifecycle.start_stage(job, "writing", total=len(cells), unit="tiles")
        write_slide(project, geometry, tissue, source, cells, digests, split=split, job=job,
                    report=report)
    except BaseException as exc:
        delete_stored(written)
        if isinstance(exc, lifecycle.JobCancelled):
            raise
        if isinstance(exc, Exception):
            finish_job(job, report, error=str(exc))
        raise
    finish_job(job, report)
    return report
