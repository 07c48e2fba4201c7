"""Image bytes for export rows: the stored centre tile as is, and the 1120x1120 context.

Reads and PNG encoding run on a small thread pool (file reads and zlib release the GIL).
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from annotations.models.patches import GRID_SIZE
from annotations.tilestore import read_tile

from .errors import ExportError
from .rows import ExportRow, load_tiles

TILE = 224
BLANK = (255, 255, 255)  # a missing neighbour is shown blank, as on the patch page
COMPOSITE_PNG_LEVEL = 1  # fast; PNG of tissue barely shrinks at higher levels
CHUNK = 25  # centre tiles per read task, at least


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
        """The centre tiles of ``rows``, byte for byte, being read: a few files per task
        (a future per file cost more CPU than reading a cached file)."""
        step = max(CHUNK, -(-len(rows) // self.workers))
        return Reading([self.pool.submit(read_centres, rows[i:i + step])
                        for i in range(0, len(rows), step)])

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
        """A 1120x1120 PNG of each row's 5x5 grid (missing tiles blank)."""
        ids = sorted({tile for row in rows for tile in row.grid if tile is not None})
        tiles = load_tiles(set(ids))
        decoded = dict(zip(ids, self.pool.map(lambda i: decode(read_tile(tiles[i])), ids),
                           strict=True))
        return list(self.pool.map(lambda row: compose(row.grid, decoded), rows))


class Reading:
    """The centre tiles of one group of rows, read by a few tasks."""

    def __init__(self, parts: list[Future[list[bytes]]]) -> None:
        self.parts = parts

    def result(self) -> list[bytes]:
        """The bytes in row order (raising the first read's error)."""
        return [data for part in self.parts for data in part.result()]

    def cancel(self) -> None:
        for part in self.parts:
            part.cancel()


def read_centres(rows: Sequence[ExportRow]) -> list[bytes]:
    """The rows' centre tiles as stored; an unreadable file (moved, deleted or unreadable
    since a --link import) is an ExportError naming the patch and the file."""
    found = []
    for row in rows:
        try:
            found.append(read_tile(row.centre_file))
        except OSError as exc:
            raise ExportError(f"patch {row.patch_id} ({row.image_name}): cannot read its "
                              f"tile {row.centre_file.file}: {exc.strerror or exc}") from exc
    return found


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


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
