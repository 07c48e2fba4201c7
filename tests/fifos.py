"""A FIFO where a file should be, and a watchdog so that code blocking on it fails the test
instead of hanging the suite: after ``grace`` seconds it opens the write end whenever a
reader waits there and closes it at once, so the reader sees an empty file (and the test
that expected a clear refusal fails on its message)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def fifo_in_place(path: Path, grace: float = 10.0) -> Iterator[list[bool]]:
    """Replace ``path`` with a FIFO; yields a list that holds True once a reader had to be
    released (it blocked on the FIFO)."""
    path.unlink(missing_ok=True)
    os.mkfifo(path)
    released: list[bool] = []
    stop = threading.Event()

    def watch() -> None:
        if stop.wait(grace):
            return
        while not stop.wait(0.2):
            try:
                fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno in (errno.ENXIO, errno.ENOENT):  # no reader waiting (yet)
                    continue
                raise
            os.close(fd)
            released.append(True)

    watchdog = threading.Thread(target=watch, daemon=True)
    watchdog.start()
    try:
        yield released
    finally:
        stop.set()
        watchdog.join()
