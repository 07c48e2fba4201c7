"""The file-check processes of one import: names go out, checked files come back.

Each process (:mod:`.filecheck`) is started with :mod:`subprocess`, not
:mod:`multiprocessing`: imports run in Celery's prefork children, which are daemonic, and
multiprocessing refuses to start processes from those. Pickled lists travel over the
processes' standard input and output (``multiprocessing.connection``, length-prefixed),
one list of names per request, answered in order; a thread per process receives the
answers and turns each into a :class:`~.writer.FetchedFile` (storing the bytes of a file
that is not linked), so the importing thread only waits when it needs a batch's files.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Generic, TypeVar

from .filecheck import Checked, Layout

T = TypeVar("T")
# Where the project's packages live, for the processes' import path.
PROJECT_ROOT = str(Path(__file__).resolve().parents[2])


class CheckerGone(RuntimeError):
    """A file-check process ended before answering (killed, or out of memory)."""


class _Checker(Generic[T]):
    """One process, the answers it owes (oldest first) and the thread receiving them."""

    def __init__(self, layout: Layout, convert: Callable[[Checked], T]) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [PROJECT_ROOT, *filter(None, [env.get("PYTHONPATH")])])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "annotations.importing.filecheck"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        assert self.process.stdin is not None and self.process.stdout is not None
        self.requests = Connection(os.dup(self.process.stdin.fileno()), readable=False)
        self.replies = Connection(os.dup(self.process.stdout.fileno()), writable=False)
        self.process.stdin.close()
        self.process.stdout.close()
        self.convert = convert
        self.owed: deque[Future[list[T]]] = deque()
        self.lock = threading.Lock()  # guards owed against the receiver giving up
        self.sending = threading.Lock()
        self.ended = False
        self.requests.send(layout)
        self.receiver = threading.Thread(target=self._receive, name="import-checks",
                                         daemon=True)
        self.receiver.start()

    def submit(self, names: list[str]) -> Future[list[T]]:
        future: Future[list[T]] = Future()
        with self.lock:  # held for the bookkeeping only: a send may wait on a full pipe
            if self.ended:
                future.set_exception(self._gone())
                return future
            self.owed.append(future)
        with self.sending, contextlib.suppress(OSError):  # it ended: the receiver fails
            self.requests.send(names)                        # what it owes
        return future

    def _receive(self) -> None:
        try:
            while True:
                try:
                    answer: list[Checked] = self.replies.recv()
                except (EOFError, OSError):
                    return
                future = self.owed.popleft()  # appended before its names were sent
                try:
                    future.set_result([self.convert(checked) for checked in answer])
                except BaseException as exc:  # storing a file failed: that batch fails
                    future.set_exception(exc)
        finally:  # whatever ended it, nobody waits forever for an answer
            with self.lock:
                self.ended = True
                owed, self.owed = list(self.owed), deque()
            for future in owed:
                future.set_exception(self._gone())

    def _gone(self) -> CheckerGone:
        code = self.process.wait()
        return CheckerGone(f"a file-check process of the import ended unexpectedly "
                           f"(exit code {code}); the files it held were not checked")

    def close(self) -> None:
        with self.sending:
            with contextlib.suppress(OSError):
                self.requests.send(None)
            self.requests.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.receiver.join()
        self.replies.close()


class FileCheckers(Generic[T]):
    """``processes`` file-check processes for the files of one :class:`Layout`."""

    def __init__(self, layout: Layout, processes: int, convert: Callable[[Checked], T]) -> None:
        self.layout = layout
        self._checkers: list[_Checker[T]] = []
        try:
            for _ in range(processes):
                self._checkers.append(_Checker(layout, convert))
        except BaseException:
            self.close()
            raise

    @property
    def pids(self) -> list[int]:
        """The processes' ids (``bench/import_parts.py`` reads their CPU and memory)."""
        return [checker.process.pid for checker in self._checkers]

    def submit(self, names: list[str]) -> Future[list[T]]:
        """Check ``names`` on the process owing the fewest answers."""
        checker = min(self._checkers, key=lambda c: len(c.owed))
        return checker.submit(names)

    def close(self) -> None:
        for checker in self._checkers:
            checker.close()
        self._checkers = []
