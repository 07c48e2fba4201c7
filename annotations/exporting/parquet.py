"""Parquet shards written the same way every time, so one state gives byte-identical files.

Rows go out in row groups of a fixed number of rows (small groups suit image datasets and
the Hub viewer); a shard is closed once it holds ``shard_bytes`` of data and the shards are
renamed ``<split>-00000-of-0000N.parquet`` when the split is complete. Image bytes are stored
uncompressed (PNG does not shrink), everything else with zstd.
"""

from __future__ import annotations

import hashlib
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 100
SHARD_BYTES = 500 * 2**20


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


def sha256_handle(handle: BinaryIO) -> str:
    """sha256 of an open file, then closed (hashlib releases the GIL on large blocks)."""
    with handle:
        digest = hashlib.sha256()
        while block := handle.read(1 << 22):
            digest.update(block)
        return digest.hexdigest()


class ShardWriter:
    """Writes one split's tables into shards under ``folder``."""

    def __init__(self, folder: Path, split: str, schema: pa.Schema, binary_columns: set[str],
                 shard_bytes: int = SHARD_BYTES, hasher: Executor | None = None) -> None:
        self.folder, self.split, self.schema = folder, split, schema
        self.hasher = hasher or ThreadPoolExecutor(1)  # hashes closed shards meanwhile
        self.hashes: list[Future[str]] = []
        self.options = writer_options(schema, binary_columns)
        self.shard_bytes = shard_bytes
        self.paths: list[Path] = []
        self.writer: pq.ParquetWriter | None = None
        self.in_shard = 0
        self.num_bytes = 0  # Arrow bytes of the split, as datasets reports num_bytes

    def write(self, table: pa.Table) -> None:
        """Write one row group."""
        if self.writer is None:
            path = self.folder / f".{self.split}-{len(self.paths):05d}.parquet.partial"
            self.paths.append(path)
            self.writer = pq.ParquetWriter(path, self.schema, **self.options)
        self.writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.in_shard += table.nbytes
        self.num_bytes += table.nbytes
        if self.in_shard >= self.shard_bytes:
            self._close_shard()

    def _close_shard(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.in_shard = 0
            # Opened now because the file is renamed later; sha256_handle closes it.
            handle = open(self.paths[-1], "rb")  # noqa: SIM115
            self.hashes.append(self.hasher.submit(sha256_handle, handle))

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
        if self.writer is not None:
            self.writer.close()
        for future in self.hashes:
            future.cancel()
        for path in self.paths:
            path.unlink(missing_ok=True)
