"""Parquet shards written the same way every time, so one state gives byte-identical files.

Rows go out in row groups of a fixed number of rows (small groups suit image datasets and
the Hub viewer); a shard is closed once it holds ``shard_bytes`` of data and the shards are
renamed ``<split>-00000-of-0000N.parquet`` when the split is complete. Image bytes are stored
uncompressed (PNG does not shrink), everything else with zstd.

A shard's sha256 is taken as it grows (parquet only ever appends), on its own thread, so
hashing overlaps the writes and closing the last shard does not wait for a pass over it.
"""

from __future__ import annotations

import contextlib
import hashlib
from concurrent.futures import Executor, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .errors import ExportError

ROW_GROUP = 100
SHARD_BYTES = 500 * 2**20
READ_BLOCK = 1 << 22


def writer_options(schema: pa.Schema, binary_columns: set[str]) -> dict:
    """ParquetWriter options that involve no clock, host or randomness."""
    leaves: list[str] = []
    for field in schema:
        if pa.types.is_struct(field.type):
            leaves += [f"{field.name}.{child.name}" for child in field.type]
        else:
            leaves.append(field.name)
    binary = {leaf for leaf in leaves if leaf.split(".")[0] in binary_columns
              and leaf.endswith(".bytes")}
    plain = [leaf for leaf in leaves if leaf not in binary]
    return {
        "compression": {leaf: ("none" if leaf in binary else "zstd") for leaf in leaves},
        "use_dictionary": plain,
        "write_statistics": plain,
        "version": "2.6",
        "data_page_version": "1.0",
    }


class GrowingFileDigest:
    """sha256 of a file that is only ever appended to, read up to its end on each call
    (from the page cache: the bytes were just written). Bytes below the end are final, so
    it may run on another thread while the writer appends; hashlib and reads drop the GIL."""

    def __init__(self, path: Path) -> None:
        self.handle = open(path, "rb", buffering=0)  # noqa: SIM115 (closed by finish/close)
        self.digest = hashlib.sha256()
        self.buffer = bytearray(READ_BLOCK)
        self.error: OSError | None = None

    def catch_up(self) -> None:
        if self.error is not None:
            return
        view = memoryview(self.buffer)
        try:
            while n := self.handle.readinto(view):
                self.digest.update(view[:n])
        except OSError as exc:  # raised by finish: the digest would be wrong
            self.error = exc

    def finish(self) -> str:
        """The sha256 of the whole file, once its writer has closed it."""
        try:
            self.catch_up()
            if self.error is not None:
                raise self.error
            return self.digest.hexdigest()
        finally:
            self.close()

    def close(self) -> None:
        self.handle.close()


class ShardWriter:
    """Writes one split's tables into shards under ``folder``; each shard is hashed as it
    grows, on ``hasher``'s thread, while the next row groups are written.

    Not thread-safe: one thread (the export's writer) calls write, close or abort."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, binary_columns: set[str],
                 shard_bytes: int = SHARD_BYTES, hasher: Executor | None = None) -> None:
        self.folder, self.split, self.schema = folder, split, schema
        self.options = writer_options(schema, binary_columns)
        self.shard_bytes = shard_bytes
        self.hasher = hasher or ThreadPoolExecutor(1, thread_name_prefix="export-hash")
        self.paths: list[Path] = []
        self.digests: list[GrowingFileDigest] = []
        self.hashes: list[Future[str]] = []
        self.catching: Future[None] | None = None
        self.writer: pq.ParquetWriter | None = None
        self.in_shard = 0
        self.num_bytes = 0  # Arrow bytes of the split, as datasets reports num_bytes

    def write(self, table: pa.Table) -> None:
        """Write one row group (an OSError, e.g. a full disk, becomes an ExportError that
        names the shard)."""
        try:
            if self.writer is None:
                path = self.folder / f".{self.split}-{len(self.paths):05d}.parquet.partial"
                self.paths.append(path)
                self.writer = pq.ParquetWriter(path, self.schema, **self.options)
                self.digests.append(GrowingFileDigest(path))
            self.writer.write_table(table, row_group_size=max(1, table.num_rows))
            if self.catching is None or self.catching.done():  # else it reads on anyway
                self.catching = self.hasher.submit(self.digests[-1].catch_up)
            self.in_shard += table.nbytes
            self.num_bytes += table.nbytes
            if self.in_shard >= self.shard_bytes:
                self._close_shard()
        except OSError as exc:
            raise ExportError(f"writing {self.split} shard {len(self.paths) - 1} "
                              f"({self.paths[-1].name}) failed: {exc}") from exc

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.in_shard = 0
            self.hashes.append(self.hasher.submit(self.digests[-1].finish))

    def close(self) -> dict[Path, str]:
        """Finish the split; returns {final shard path: sha256}."""
        self._close_shard()
        final = {}
        for i, (path, sha) in enumerate(zip(self.paths, self.hashes, strict=True)):
            target = self.folder / f"{self.split}-{i:05d}-of-{len(self.paths):05d}.parquet"
            path.rename(target)
            final[target] = sha.result()
        return final

    def abort(self) -> None:
        """Close what is open and remove this split's files, whatever state they are in."""
        if self.writer is not None:
            with contextlib.suppress(OSError):  # the file is removed below anyway
                self.writer.close()
        pending: list[Future[Any]] = [f for f in [self.catching, *self.hashes] if f is not None]
        for future in pending:
            future.cancel()
        wait(pending)  # a running read finishes before its file is closed
        for digest in self.digests:
            digest.close()
        for path in self.paths:
            path.unlink(missing_ok=True)
