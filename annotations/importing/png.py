"""A lossless PNG encoder for tiles cut from slides, ~10x faster than Pillow's at level 1.

Pillow tries every PNG filter on every row; for 224 px H&E tiles the "Up" filter alone,
computed with numpy, compresses about as well. Deflate is Intel's ISA-L (``isal``), about
8x faster than zlib at level 1 for the same size. Both release the GIL, so tiles encode in
parallel on the tiling threads. The output is a plain 8-bit RGB PNG (a zlib stream in
IDAT) that any decoder reads; the tests decode it with Pillow.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np
from isal import isal_zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"
FILTER_UP = 2


def _chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def encode_rgb(pixels: np.ndarray, level: int = 1) -> bytes:
    """PNG bytes of an (height, width, 3) uint8 array; ``level`` is ISA-L's 0..3."""
    height, width, channels = pixels.shape
    if channels != 3 or pixels.dtype != np.uint8:
        raise ValueError("encode_rgb takes (height, width, 3) uint8 pixels")
    rows = pixels.reshape(height, width * 3)
    scanlines = np.empty((height, width * 3 + 1), dtype=np.uint8)
    scanlines[:, 0] = FILTER_UP
    scanlines[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=scanlines[1:, 1:])  # wraps modulo 256, as PNG says
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"".join((SIGNATURE, _chunk(b"IHDR", header),
                     _chunk(b"IDAT", isal_zlib.compress(scanlines.tobytes(), level)),
                     _chunk(b"IEND", b"")))
