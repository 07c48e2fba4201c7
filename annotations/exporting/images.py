"""Image bytes for export rows: the stored centre tile as is, and the 1120x1120 context.

Reads and PNG encoding run on a small thread pool (file reads and zlib release the GIL).
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from PIL import Image

from annotations.models.patches import GRID_SIZE
from annotations.tilestore import read_tile

from .rows import ExportRow, load_tiles

TILE = 224
BLANK = (255, 255, 255)  # a missing neighbour is shown blank, as on the patch page
COMPOSITE_PNG_LEVEL = 1  # fast; PNG of tissue barely shrinks at higher levels


def default_workers() -> int:
    return min(8, (os.cpu_count() or 2) * 2)


class ImageReader:
    """Reads the bytes a group of rows needs; one per export (it owns the pool)."""

    def __init__(self, workers: int | None = None) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers or default_workers(),
                                       thread_name_prefix="export-read")

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def __enter__(self) -> ImageReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def centres(self, rows: Sequence[ExportRow]) -> list[Future[bytes]]:
        """The centre tile's stored bytes for each row, byte for byte, being read (the caller
        writes the previous group meanwhile)."""
        return [self.pool.submit(read_tile, row.centre_file) for row in rows]

    def contexts(self, rows: Sequence[ExportRow]) -> list[bytes]:
        """A 1120x1120 PNG of each row's 5x5 grid (missing tiles blank)."""
        ids = sorted({tile for row in rows for tile in row.grid if tile is not None})
        tiles = load_tiles(set(ids))
        decoded = dict(zip(ids, self.pool.map(lambda i: decode(read_tile(tiles[i])), ids),
                           strict=True))
        return list(self.pool.map(lambda row: compose(row.grid, decoded), rows))


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
