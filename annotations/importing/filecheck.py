"""Reading and checking one folder's files in a process of its own (the file-check process).

An import reads, hashes and checks every file it has not seen. On threads those steps
fought the writing thread for the GIL: each file hands it over five or six times (open,
fstat, read, close, sha256), and on two cores two threads checked files no faster than
one. A process per core has a GIL of its own, so the checks run beside the database
writes instead of between them (``bench/import_parts.py``).

``python -m annotations.importing.filecheck`` is the process; it imports only the standard
library, ISA-L and (for a format other than PNG) Pillow, never Django, and talks to
:mod:`annotations.importing.checkers` over its standard input and output: first a
:class:`Layout`, then lists of names, each answered by a list of :data:`Checked`, in order.
A ``None`` or the end of its input ends it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

from annotations.localfiles import FileTooLarge, read_inside, too_large

from .validation import check_tile_bytes, unsafe_name_reason

# (name, sha256, reason or "", extension, path to link or None, bytes to store or None)
Checked = tuple[str, str, str, str, str | None, bytes | None]


@dataclass(frozen=True)
class Layout:
    """Where the names live and what to say when one cannot be read.

    ``missing``, ``unreadable`` and ``outside`` are the reasons given for a missing file,
    another read error and a link leading out of ``folder``; ``{name}`` and ``{error}``
    are filled in. ``link``: the files stay where they are (their path comes back, not
    their bytes). ``check_names``: refuse names unsafe as a file of the dataset (SPIDER's
    metadata names files; a class folder's names come from the disk itself).
    """

    folder: str
    link: bool
    max_bytes: int
    expected_size: int | None
    missing: str
    unreadable: str
    outside: str
    check_names: bool = True


def check_named(layout: Layout, folder: Path, name: str) -> Checked:
    """Read ``name`` inside ``folder`` (the layout's, resolved) and check its bytes."""
    if layout.check_names and (reason := unsafe_name_reason(name)):
        return name, "", reason, "png", None, None
    try:
        found = read_inside(folder, name, layout.max_bytes)
    except FileTooLarge as large:  # refused unread: its size is known from the file system
        return name, "", too_large(large.size, layout.max_bytes), "png", None, None
    except FileNotFoundError as exc:
        return name, "", layout.missing.format(name=name, error=exc.strerror or exc), \
            "png", None, None
    except OSError as exc:
        return name, "", layout.unreadable.format(name=name, error=exc.strerror or exc), \
            "png", None, None
    if found is None:
        return name, "", layout.outside.format(name=name, error=""), "png", None, None
    data, path = found
    checked = check_tile_bytes(data, layout.max_bytes, layout.expected_size)
    keep = not checked.reason and not layout.link
    return (name, checked.sha256, checked.reason, checked.extension,
            str(path) if layout.link else None, data if keep else None)


def serve(requests: Connection, replies: Connection) -> None:
    """Answer lists of names until ``None`` or the end of the input."""
    layout: Layout = requests.recv()
    folder = Path(layout.folder)
    try:
        while (names := requests.recv()) is not None:
            replies.send([check_named(layout, folder, name) for name in names])
    except EOFError:  # the importer went away: nothing is left to answer
        return


def main() -> None:
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print goes to standard error, never into the replies
    serve(Connection(os.dup(0), writable=False), replies)


if __name__ == "__main__":
    main()
