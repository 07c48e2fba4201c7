"""Deep Zoom tiles of a whole slide for the viewer, from OpenSlide's DeepZoomGenerator.

Opening a slide reads its index (costly for big files), so each process keeps the last few
generators open, keyed by path and modification time (a replaced file is reopened).
Levels map to image pixels of level 0 (``limit_bounds`` off), the heatmap's coordinates.
"""

from __future__ import annotations

import io
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from annotations.models import Slide

TILE_SIZE = 254
OVERLAP = 1
JPEG_QUALITY = 80
OPEN_SLIDES = 8

_lock = threading.Lock()
_open: OrderedDict[tuple[str, float], Any] = OrderedDict()


class SlideFileMissing(Exception):
    """The slide's file is no longer where it was imported from."""


def generator(slide: Slide) -> Any:
    """The (cached) DeepZoomGenerator of ``slide``'s file."""
    from openslide import OpenSlide
    from openslide.deepzoom import DeepZoomGenerator

    path = Path(slide.source_file)
    try:
        key = (str(path), os.stat(path).st_mtime)
    except OSError:
        raise SlideFileMissing(f"{path.name} is not readable on this server") from None
    with _lock:
        found = _open.get(key)
        if found is not None:
            _open.move_to_end(key)
            return found
    made = DeepZoomGenerator(OpenSlide(str(path)), tile_size=TILE_SIZE, overlap=OVERLAP,
                             limit_bounds=False)
    with _lock:
        _open[key] = made
        while len(_open) > OPEN_SLIDES:
            _open.popitem(last=False)
    return made


def dzi_xml(slide: Slide) -> str:
    return str(generator(slide).get_dzi("jpeg"))


def tile_jpeg(slide: Slide, level: int, col: int, row: int) -> bytes | None:
    """One Deep Zoom tile, or None when (level, col, row) is outside the pyramid."""
    dz = generator(slide)
    if not 0 <= level < dz.level_count:
        return None
    cols, rows = dz.level_tiles[level]
    if not (0 <= col < cols and 0 <= row < rows):
        return None
    buffer = io.BytesIO()
    dz.get_tile(level, (col, row)).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
