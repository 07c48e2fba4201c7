"""Where tile bytes live: content-addressed files in Django's default storage, or links.

Every read of a tile image goes through :func:`open_tile` or :func:`read_tile`, so a tile
stored under MEDIA_ROOT, in another storage (via SPIDER_STORAGE_BACKEND) or linked in place
reads the same way; :func:`local_path` gives the file itself to a reader that wants it (the
export reads files straight into its Arrow buffers) and None where there is no such file.
"""

from __future__ import annotations

import functools
import os
from typing import IO, TYPE_CHECKING

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage, storages

from annotations.localfiles import open_regular, read_file

if TYPE_CHECKING:
    from annotations.models import Tile


def storage_name(sha256: str, extension: str = "png") -> str:
    return f"tiles/{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension}"


def store_tile_bytes(sha256: str, data: bytes, extension: str = "png") -> tuple[str, bool]:
    """Save ``data`` under its content address; returns (name, whether it was newly written)."""
    name = storage_name(sha256, extension)
    if default_storage.exists(name):
        return name, False
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:  # a concurrent writer won the race; identical content, keep one copy
        default_storage.delete(saved)
        return name, False
    return name, True


def delete_stored(names: list[str]) -> None:
    for name in names:
        default_storage.delete(name)


def open_tile(tile: Tile) -> IO[bytes]:
    """The tile's file, open for reading. A local one (linked, or under MEDIA_ROOT) is opened
    by :func:`~annotations.localfiles.open_regular` at exactly its resolved path: a FIFO
    put in a linked tile's place would hold the reader (a web worker's thread, an export)
    until something wrote to it, and a symbolic link, in the file's place or in a folder's
    on the way (the dataset's ``images/``), could point at any file the server can read."""
    if (path := local_path(tile)) is not None:
        return os.fdopen(open_regular(path, exact=True)[0], "rb")
    return default_storage.open(tile.file, "rb")


def local_path(tile: Tile) -> str | None:
    """The tile's file on this machine's file system, every link on the way resolved, for
    readers that want the file itself and open it ``exact``: a linked tile's path as the
    import resolved it, a stored one's under MEDIA_ROOT resolved once. None when the
    storage is not a FileSystemStorage (its ``path`` may name no real file: Django's
    InMemoryStorage answers one), so the caller reads through :func:`read_tile`."""
    return local_file_path(tile.file, tile.linked)


def local_file_path(file: str, linked: bool) -> str | None:
    """:func:`local_path` from a tile's ``file`` and ``linked`` columns."""
    if linked:
        return file
    storage = storages["default"]
    if isinstance(storage, FileSystemStorage):
        return os.path.join(resolved_folder(str(storage.location)), file)
    return None


@functools.lru_cache(maxsize=8)
def resolved_folder(location: str) -> str:
    """MEDIA_ROOT with its links resolved (it may be a link to a volume, say), once per
    value: tiles under it are then opened at exact paths."""
    return os.path.realpath(location)


def read_tile(tile: Tile) -> bytes:
    """The tile's bytes; a local file larger than SPIDER_MAX_TILE_BYTES (which the import
    refused, so not the tile it checked) raises :class:`~annotations.localfiles.FileTooLarge`
    unread."""
    if (path := local_path(tile)) is not None:
        return read_file(path, exact=True, max_bytes=settings.SPIDER_MAX_TILE_BYTES)
    with open_tile(tile) as handle:
        return handle.read()
