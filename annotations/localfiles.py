"""Reading local files fast and inside a folder, with nothing but the standard library.

Kept free of Django so that the import's file-check processes
(:mod:`annotations.importing.filecheck`) can use it without setting Django up.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

NOT_REGULAR = "not a regular file"
LINKED_AWAY = "reached through a symbolic link, not at its recorded path"


def open_regular(path: str | os.PathLike[str], *, follow_links: bool = True,
                 exact: bool = False) -> tuple[int, os.stat_result]:
    """A descriptor of the regular file at ``path`` and its status; anything but a regular
    file raises OSError (the caller closes the descriptor). Opened without blocking, then
    checked: a FIFO named where a tile should be (anyone can make one with mkfifo) would
    otherwise block the open, and the import or export with it, until something writes
    to it.

    ``follow_links=False`` refuses a symbolic link as the last part of the path (ELOOP).
    ``exact`` (which implies it) is for a path resolved earlier, such as a linked tile's
    (the import resolved it): the file opened must be at exactly that path, so a link put
    in place of any folder on the way since (the dataset's ``images/``, say) is refused
    too, with ELOOP."""
    flags = (os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
             | (0 if follow_links and not exact else os.O_NOFOLLOW))
    fd = os.open(path, flags)
    try:
        status = os.fstat(fd)
        if stat.S_ISDIR(status.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR, str(path))
        if exact and (real := opened_path(fd, status, path)) != os.path.abspath(path):
            if real is not None and real.endswith(" (deleted)"):  # gone since it was opened
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), str(path))
            raise OSError(errno.ELOOP, LINKED_AWAY, str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, status


def opened_path(fd: int, status: os.stat_result, path: str | os.PathLike[str]) -> str | None:
    """Where the file open as ``fd`` really is, every link resolved: the kernel's own answer
    on Linux (one readlink, no race); elsewhere ``path`` resolved by name, if that is still
    the same file."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        real = os.path.realpath(path)
        try:
            return real if os.path.samestat(os.stat(real), status) else None
        except OSError:
            return None


def too_large(size: int, max_bytes: int) -> str:
    """Why a file of ``size`` bytes is refused (``max_bytes`` is SPIDER_MAX_TILE_BYTES)."""
    return f"file is {size} bytes, more than {max_bytes}"


class FileTooLarge(OSError):
    """The file holds ``size`` bytes (at least), more than the reader would take (an OSError,
    so every reader's handler names the file and says why)."""

    def __init__(self, size: int, max_bytes: int) -> None:
        super().__init__(errno.EFBIG, too_large(size, max_bytes))
        self.size = size


def read_file(path: str | os.PathLike[str], *, follow_links: bool = True, exact: bool = False,
              max_bytes: int | None = None) -> bytes:
    """A local file's bytes in one read of its size: about half the CPU of
    ``Path.read_bytes`` for a 50 KB tile, which builds a buffered reader and reads a second
    time to find the end. Imports and exports read every tile once, so it adds up.

    ``follow_links=False``: a symbolic link as the last component raises ``OSError`` with
    ``errno.ELOOP`` instead of being opened (the importer then checks where it points);
    ``exact``: so does a link anywhere on the path (:func:`open_regular`).
    ``max_bytes``: a larger file raises :class:`FileTooLarge` before a byte of it is read
    (or once it has grown past it), so a huge file named as a tile costs no memory."""
    fd, status = open_regular(path, follow_links=follow_links, exact=exact)
    try:
        size = status.st_size
        if max_bytes is not None and size > max_bytes:
            raise FileTooLarge(size, max_bytes)
        data = os.read(fd, size + 1)
        if len(data) <= size:  # all of it, and the end seen
            return data
        chunks, total = [data], len(data)  # the file grew since fstat: read on to its end
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise FileTooLarge(total, max_bytes)
        return b"".join(chunks)
    finally:
        os.close(fd)


def read_inside(folder: Path, name: str, max_bytes: int | None = None
                ) -> tuple[bytes, Path] | None:
    """(the bytes of ``folder / name``, the path they were read from), or None when a
    symbolic link takes it outside ``folder`` (already resolved). ``name`` is already free
    of ``..`` and absolute parts. A plain file, the common case, is opened without
    following links and costs no separate lstat; only a link (ELOOP) or a name with
    folders is resolved and checked. OSError (a missing file, say) and FileTooLarge (past
    ``max_bytes``) go to the caller."""
    path = folder / name
    if "/" not in name:
        try:
            return read_file(path, follow_links=False, max_bytes=max_bytes), path
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
    real = path.resolve()
    if not real.is_relative_to(folder):
        return None
    return read_file(real, max_bytes=max_bytes), real
