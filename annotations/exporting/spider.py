"""Export to SPIDER's own layout: metadata.json + images/, so tools built for SPIDER read it.

Each record gets the reviewed label as ``class`` and its tiles under their original file
names (the patch's ``image_name`` for the centre, a recorded name of the tile for each
neighbour); a tile shared by many records is copied once. metadata.json is written record
by record, so memory stays flat.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from django.db.models import Min, QuerySet

from annotations.importing.records import CONTEXT_KEYS
from annotations.importing.run import Progress, no_progress
from annotations.importing.spider import batched
from annotations.importing.validation import unsafe_name_reason
from annotations.models import Patch, Project, Tile, TileName
from annotations.models.patches import CENTRE_INDEX
from annotations.tilestore import read_tile

from .errors import ExportError
from .files import all_or_nothing, sha256_tree
from .images import default_workers
from .result import ExportResult
from .rows import ClassList, ExportRow, iter_rows, load_tiles
from .selection import ExportFilter, exportable
from .summary import SnapshotStats

GROUP = 500


def tile_names(tiles: dict[int, Tile]) -> dict[int, str]:
    """One file name per tile: the first (sorted) name recorded for it. Recorded names are
    unique within a project, so two different tiles never get the same name."""
    names = dict(TileName.objects.filter(tile_id__in=list(tiles)).values("tile_id")
                 .annotate(first=Min("name")).values_list("tile_id", "first"))
    return {pk: names.get(pk) or tile.name for pk, tile in tiles.items()}


def record(row: ExportRow, names: dict[int, str], classes: ClassList) -> dict:
    if row.current_label is None:
        raise ExportError(f"patch {row.patch_id} ({row.image_name}) has no label; SPIDER's "
                          "layout needs a class for every record")
    if row.split not in ("train", "test"):
        raise ExportError(f"patch {row.patch_id} ({row.image_name}) has no train/test split; "
                          "SPIDER's layout needs one")
    context = {key: names[tile] for position, (key, tile) in enumerate(
        zip(CONTEXT_KEYS, row.grid, strict=True)) if tile is not None and position != CENTRE_INDEX}
    found: dict[str, Any] = {"slide_id": row.slide, "image_name": row.image_name,
                             "context_info": context, "class": classes.name(row.current_label),
                             "split": row.split}
    if row.slide_x is not None:  # cut from a whole slide: where, in level-0 pixels
        found["slide_x"], found["slide_y"] = row.slide_x, row.slide_y
    return found


def copy_tile(tile: Tile, target: Path, needed_by: ExportRow) -> None:
    """Copy the tile's file (read by :func:`~annotations.tilestore.read_tile`, so never
    through a link or past the size limit); one that cannot be read (moved, deleted or
    replaced since a --link import) is an ExportError naming the patch that needs it."""
    if target.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = read_tile(tile)
    except OSError as exc:
        raise ExportError(f"patch {needed_by.patch_id} ({needed_by.image_name}): cannot read "
                          f"its tile {tile.file}: {exc.strerror or exc}") from exc
    try:
        target.write_bytes(data)
    except OSError as exc:  # a full disk, say
        raise ExportError(f"patch {needed_by.patch_id} ({needed_by.image_name}): copying its "
                          f"tile {tile.file} to images/{target.name} failed: "
                          f"{exc.strerror or exc}") from exc


def export_spider(project: Project, out: Path, *, export_filter: ExportFilter | None = None,
                  progress: Progress = no_progress, workers: int | None = None) -> ExportResult:
    """Write ``out`` in SPIDER's layout. All or nothing, as the Hugging Face export: whatever
    stops it (an unreadable tile, a record SPIDER cannot hold, a cancelled job) removes what
    it had written, leaving ``out`` as it was."""
    export_filter = export_filter or ExportFilter()
    patches, splits = exportable(project, export_filter)
    with all_or_nothing(out, "images", "metadata.json") as folder:
        return write_spider(project, folder, patches, sum(splits.values()), progress, workers)


def write_spider(project: Project, out: Path, patches: QuerySet[Patch], total: int,
                 progress: Progress, workers: int | None) -> ExportResult:
    images = out / "images"
    images.mkdir()
    classes = ClassList.of(project)
    stats = SnapshotStats(classes)
    done = 0
    progress(0, total, "patches")
    with (open(out / "metadata.json", "w", encoding="utf-8") as meta,
          ThreadPoolExecutor(workers or default_workers()) as pool):
        separator = "[\n"
        for group in batched(iter_rows(project, patches, grid=True), GROUP):
            tiles = load_tiles({t for row in group for t in row.grid if t is not None})
            names = tile_names(tiles)
            files: dict[str, tuple[Tile, ExportRow]] = {}
            for row in group:
                meta.write(separator + json.dumps(record(row, names, classes),
                                                  ensure_ascii=False))
                separator = ",\n"
                wanted = [(names[t], tiles[t]) for t in row.grid if t is not None]
                wanted.append((row.image_name, tiles[row.centre_tile]))
                for name, tile in wanted:
                    reason = unsafe_name_reason(name)
                    if reason:
                        raise ExportError(f"patch {row.patch_id}: tile file name {name!r}: "
                                          f"{reason}")
                    files.setdefault(name, (tile, row))
            list(pool.map(copy_tile, [tile for tile, _ in files.values()],
                          [images / name for name in files], [row for _, row in files.values()]))
            stats.add(group)
            done += len(group)
            progress(done, total, "patches")
        meta.write("\n]\n")
    return ExportResult(stats.as_dict(), sha256_tree(out))
