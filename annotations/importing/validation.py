"""Checks applied to every file and name before anything is stored."""

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath

from PIL import Image

TILE_SIZE = 224


@dataclass(frozen=True)
class CheckedTile:
    """A file that passed the checks (``reason`` empty) or why it did not."""

    data: bytes | None
    sha256: str
    reason: str = ""
    extension: str = "png"


def unsafe_name_reason(name: object) -> str:
    """Why ``name`` may not be used as a file inside the dataset folder ('' when fine)."""
    if not isinstance(name, str) or not name:
        return "file name is missing or not a string"
    if "\x00" in name or "\\" in name:
        return "file name contains a NUL byte or backslash"
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        return "file name points outside the dataset folder"
    return ""


def check_tile_bytes(data: bytes, max_bytes: int, expected_size: int | None = TILE_SIZE
                     ) -> CheckedTile:
    """Hash ``data`` and check it is a complete image of the expected size.

    The size comes from the header, so a decompression bomb is refused before any pixel is
    decoded; ``verify()`` then walks the chunks and their checksums, which catches truncated
    or corrupted files without paying for a full decode.
    """
    sha = hashlib.sha256(data).hexdigest()
    if len(data) > max_bytes:
        return CheckedTile(None, sha, f"file is {len(data)} bytes, more than {max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                size = image.size
                if expected_size is not None and size != (expected_size, expected_size):
                    return CheckedTile(None, sha, f"image is {size[0]}x{size[1]}, "
                                                  f"expected {expected_size}x{expected_size}")
                fmt = image.format or "PNG"
                if fmt == "PNG":
                    image.verify()  # chunk CRCs, no pixel decode
                else:
                    image.load()  # other formats have no cheap integrity check
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return CheckedTile(None, sha, f"decompression bomb refused: {exc}")
    except Exception as exc:  # Pillow raises many types for corrupt data
        return CheckedTile(None, sha, f"unreadable or corrupt image: {exc}")
    extension = {"JPEG": "jpg", "TIFF": "tif"}.get(fmt, fmt.lower())
    return CheckedTile(data, sha, extension=extension)
