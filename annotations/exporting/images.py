"""Image bytes for export rows: the stored centre tile as is, and the 1120x1120 context.

Reads and PNG encoding run on a small thread pool (file reads and zlib release the GIL).
Centre tiles are read in fixed chunks of rows, each straight into an Arrow array of its
own; the image column of a row group is those chunks, and since parquet pages follow them,
the chunk size is fixed (never the machine's thread count), so every machine writes the
same bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import pyarrow as pa
from django.conf import settings
from PIL import Image

from annotations.models import Tile
from annotations.models.patches import GRID_SIZE
from annotations.tilestore import local_path, opens_exact, read_tile

from .arrow_columns import FileReadError, binary_from_files
from .errors import ExportError
from .features import IMAGE_TYPE, image_column
from .rows import ExportRow, load_tiles

TILE = 224
BLANK = (255, 255, 255)  # a missing neighbour is shown blank, as on the patch page
COMPOSITE_PNG_LEVEL = 1  # fast; PNG of tissue barely shrinks at higher levels
CHUNK = 25  # centre tiles per read task and per Arrow chunk of the image column


def default_workers() -> int:
    return min(8, (os.cpu_count() or 2) * 2)


class ImageReader:
    """Reads the bytes a group of rows needs; one per export (it owns the pool)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or default_workers()
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="export-read")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def centres(self, rows: Sequence[ExportRow]) -> Reading:
        """The centre tiles of ``rows``, byte for byte, being read: CHUNK files per task
        (a future per file cost more CPU than reading a cached file)."""
        return Reading([self.pool.submit(read_centres, rows[i:i + CHUNK])
                        for i in range(0, len(rows), CHUNK)])

    def ahead(self, groups: Iterable[list[ExportRow]]
              ) -> Generator[tuple[list[ExportRow], Reading], None, None]:
        """Each group with its centre tiles, the next group's tiles already being read while
        the caller builds this one's table."""
        pending: tuple[list[ExportRow], Reading] | None = None
        try:
            for group in groups:
                reading = (group, self.centres(group))
                if pending is not None:
                    yield pending
                pending = reading
            if pending is not None:
                yield pending
        finally:  # stopped early (an error): drop reads not yet started
            if pending is not None:
                pending[1].cancel()

    def contexts(self, rows: Sequence[ExportRow]) -> list[bytes]:
        """A 1120x1120 PNG of each row's 5x5 grid (missing tiles blank); a tile that cannot
        be read or decoded is an ExportError naming the first row whose grid needs it."""
        needed_by: dict[int, ExportRow] = {}
        for row in rows:
            for tile in row.grid:
                if tile is not None:
                    needed_by.setdefault(tile, row)
        ids = sorted(needed_by)
        tiles = load_tiles(set(ids))
        decoded = dict(zip(ids, self.pool.map(lambda i: decode_tile(tiles[i], needed_by[i]),
                                              ids), strict=True))
        return list(self.pool.map(lambda row: compose(row.grid, decoded), rows))


class Reading:
    """The centre tiles of one group of rows, read by a few tasks."""

    def __init__(self, parts: list[Future[pa.StructArray]]) -> None:
        self.parts = parts

    def result(self) -> pa.ChunkedArray:
        """The image column in row order (raising the first read's error)."""
        return pa.chunked_array([part.result() for part in self.parts], type=IMAGE_TYPE)

    def cancel(self) -> None:
        for part in self.parts:
            part.cancel()


def read_centres(rows: Sequence[ExportRow]) -> pa.StructArray:
    """The rows' centre tiles as stored, as an image column; an unreadable file (moved,
    deleted, unreadable or rewritten since a --link import) is an ExportError naming the
    patch and the file."""
    try:
        sources: list[str | bytes] = []
        for position, row in enumerate(rows):  # remote storage: the bytes, read here
            try:
                sources.append(local_path(row.centre_file) or read_tile(row.centre_file))
            except OSError as exc:
                raise FileReadError(position, exc.strerror or str(exc)) from exc
        # the import refused larger files, so a larger one is not the tile it checked
        return image_column(binary_from_files(
            sources, settings.SPIDER_MAX_TILE_BYTES,
            exact=[opens_exact(row.centre_file) for row in rows]))
    except FileReadError as failed:
        row = rows[failed.position]
        raise ExportError(f"patch {row.patch_id} ({row.image_name}): cannot read its tile "
                          f"{row.centre_file.file}: {failed.reason}") from failed


def decode_tile(tile: Tile, needed_by: ExportRow) -> Image.Image:
    """The tile as RGB, read by :func:`~annotations.tilestore.read_tile` (no link followed,
    nothing past the size limit). The import checked it, but a --link import's file may have
    been replaced since: Pillow raises many types for corrupt data, as the import's check
    found, so any failure to decode is an ExportError naming the patch."""
    def failed(reason: str) -> ExportError:
        return ExportError(f"patch {needed_by.patch_id} ({needed_by.image_name}): cannot "
                           f"read the tile {tile.file} in its context: {reason}")

    try:
        data = read_tile(tile)
    except OSError as exc:
        raise failed(exc.strerror or str(exc)) from exc
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    except Image.UnidentifiedImageError as exc:
        raise failed("not an image Pillow can read") from exc
    except Exception as exc:  # truncated, corrupt, a decompression bomb
        raise failed(f"unreadable or corrupt image: {exc}") from exc


def compose(grid: Sequence[int | None], decoded: dict[int, Image.Image]) -> bytes:
    canvas = Image.new("RGB", (GRID_SIZE * TILE, GRID_SIZE * TILE), BLANK)
    for position, tile in enumerate(grid):
        if tile is None:
            continue
        image = decoded[tile]
        if image.size != (TILE, TILE):
            image = image.resize((TILE, TILE), Image.Resampling.BICUBIC)
        row, col = divmod(position, GRID_SIZE)
        canvas.paste(image, (col * TILE, row * TILE))
    out = io.BytesIO()
    canvas.save(out, format="PNG", compress_level=COMPOSITE_PNG_LEVEL)
    return out.getvalue()
