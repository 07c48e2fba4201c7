"""Writes that run in order on one thread behind the caller, so it never waits for the disk.

The export's main thread reads rows from the database and builds Arrow tables (Python, under
the GIL); parquet encoding, the write and the sha256 run meanwhile on this thread (C++ and
hashlib, without the GIL). At most ``depth`` writes are queued, so memory stays flat; once
one fails the queued ones are skipped and its error re-raises in the caller at a later
submit (the first that waits on it, once ``depth`` are queued) or at drain.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

DEPTH = 2


class WriteBehind:
    def __init__(self, depth: int = DEPTH, name: str = "export-write") -> None:
        self.depth = depth
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=name)
        self.pending: deque[Future[Any]] = deque()
        self.failed = False

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        if self.failed:  # an earlier write failed: the caller gets that error, in order
            return None
        try:
            return fn(*args)
        except BaseException:
            self.failed = True
            raise

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` after the writes before it; first waits while ``depth`` are
        queued (raising the error of one that failed)."""
        while len(self.pending) >= self.depth:
            self.pending.popleft().result()
        self.pending.append(self.pool.submit(self._run, fn, args))

    def drain(self) -> None:
        """Wait for every queued write (raising the first error); the caller may then use
        what they wrote to directly."""
        while self.pending:
            self.pending.popleft().result()

    def stop(self) -> None:
        """Drop queued writes and wait for the running one (after an error elsewhere, before
        the files are removed)."""
        for future in self.pending:
            future.cancel()
        self.pending.clear()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WriteBehind:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
