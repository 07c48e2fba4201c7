"""Where tile bytes live: content-addressed files in Django's default storage, or links.

Every read of a tile image goes through :func:`open_tile` or :func:`read_tile`, so a tile
stored under MEDIA_ROOT, in another storage (via SPIDER_STORAGE_BACKEND) or linked in place
reads the same way; :func:`local_path` gives the file itself to a reader that wants it (the
export reads files straight into its Arrow buffers) and None where there is no such file.
"""

from __future__ import annotations

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
    """The tile's file, open for reading. A local one is opened by
    :func:`~annotations.localfiles.open_regular`, never through a link in its own place: a
    FIFO put in a linked tile's place would hold the reader (a web worker's thread, an
    export) until something wrote to it, and a link could point at any file the server can
    read. A linked tile is opened ``exact`` besides (:func:`opens_exact`)."""
    if (path := local_path(tile)) is not None:
        return os.fdopen(open_regular(path, follow_links=False, exact=opens_exact(tile))[0],
                         "rb")
    return default_storage.open(tile.file, "rb")


def opens_exact(tile: Tile) -> bool:
    """Whether the tile's file must be at exactly its recorded path, no link on any folder of
    it: a linked tile's path was resolved by the import, and its dataset's folders are not
    the server's (swap ``images/`` for a link and any file of the same name is served). Under
    MEDIA_ROOT only the server writes, and an operator may well link a folder there to
    another disk, so a stored tile is refused only through a link in its own place."""
    return tile.linked


def local_path(tile: Tile) -> str | None:
    """The tile's file on this machine's file system, for readers that want the file itself;
    None when the storage is not a FileSystemStorage (its ``path`` may name no real file:
    Django's InMemoryStorage answers one), so the caller reads through :func:`read_tile`."""
    return local_file_path(tile.file, tile.linked)


def local_file_path(file: str, linked: bool) -> str | None:
    """:func:`local_path` from a tile's ``file`` and ``linked`` columns."""
    if linked:
        return file
    if isinstance(storages["default"], FileSystemStorage):
        return default_storage.path(file)
    return None


def read_tile(tile: Tile) -> bytes:
    """The tile's bytes; a local file larger than SPIDER_MAX_TILE_BYTES (which the import
    refused, so not the tile it checked) raises :class:`~annotations.localfiles.FileTooLarge`
    unread."""
    if (path := local_path(tile)) is not None:
        return read_file(path, follow_links=False, exact=opens_exact(tile),
                         max_bytes=settings.SPIDER_MAX_TILE_BYTES)
    with open_tile(tile) as handle:
        return handle.read()
