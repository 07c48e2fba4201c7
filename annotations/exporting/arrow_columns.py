"""Arrow arrays built from Python values straight from their buffers.

``pa.array`` would do, but its first call imports pandas (~0.35 s of CPU, most of what a
4,000-patch export otherwise spends outside reading and writing) and it grows a binary
column's data buffer by doubling, copying the image bytes several times. Here each column
is one ``array.array`` or one ``bytes.join``: the image bytes are copied once.
:func:`binary_from_files` does better for files: they are read straight into one buffer
from Arrow's memory pool, so the bytes are never copied and the pool's pages are reused.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Sequence
from itertools import accumulate

import pyarrow as pa

from annotations.localfiles import open_regular, too_large

# array.array type codes of the fixed-width types the export writes (little-endian host)
TYPECODES = {pa.int64(): "q", pa.int32(): "i", pa.float32(): "f", pa.float64(): "d"}
assert array("i").itemsize == 4 and array("q").itemsize == 8


def validity(values: Sequence[object]) -> tuple[pa.Buffer | None, int]:
    """The validity bitmap (None when nothing is null) and the null count."""
    bits, nulls = 0, 0
    for i, value in enumerate(values):
        if value is None:
            nulls += 1
        else:
            bits |= 1 << i
    if not nulls:
        return None, 0
    return pa.py_buffer(bits.to_bytes((len(values) + 7) // 8, "little")), nulls


def fixed_width(values: Sequence[float | int | None], type_: pa.DataType) -> pa.Array:
    """An int or float column; a null's slot holds 0."""
    mask, nulls = validity(values)
    data = array(TYPECODES[type_], [0 if v is None else v for v in values])
    return pa.Array.from_buffers(type_, len(values), [mask, pa.py_buffer(data)], nulls)


def variable_width(values: Sequence[str | bytes | None], type_: pa.DataType) -> pa.Array:
    """A string (UTF-8) or binary column with 32-bit offsets."""
    mask, nulls = validity(values)
    encoded = [b"" if v is None else v.encode() if isinstance(v, str) else v for v in values]
    offsets = array("i", accumulate(map(len, encoded), initial=0))  # OverflowError past 2 GiB
    return pa.Array.from_buffers(type_, len(values), [
        mask, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))], nulls)


def column(values: Sequence[object], type_: pa.DataType) -> pa.Array:
    """``pa.array(values, type_)`` for the export's column types."""
    if type_ in TYPECODES:
        return fixed_width(values, type_)  # type: ignore[arg-type]
    if type_ in (pa.string(), pa.binary()):
        return variable_width(values, type_)  # type: ignore[arg-type]
    raise TypeError(f"no column builder for {type_}")


class FileReadError(Exception):
    """Reading ``sources[position]`` failed, or the file is not what it was: ``reason``."""

    def __init__(self, position: int, reason: str) -> None:
        super().__init__(position, reason)
        self.position, self.reason = position, reason


def binary_from_files(sources: Sequence[str | bytes], max_bytes: int | None = None,
                      exact: Sequence[bool] | None = None) -> pa.Array:
    """A binary column of the files at the paths in ``sources`` (an item that is already
    bytes, e.g. from remote storage, is copied in as is).

    Each file is opened (a regular file, not through a symbolic link in its own place, nor
    on any folder of its path where ``exact`` says so for it:
    :func:`~annotations.localfiles.open_regular`) and sized first, then read with one
    ``readv`` into its slice of a buffer allocated once (without the GIL). FileReadError
    names the first file that cannot be read, is larger than ``max_bytes`` or changed size
    in between."""
    opened: list[int | bytes] = []
    try:
        sizes = []
        for position, source in enumerate(sources):
            if isinstance(source, bytes):
                opened.append(source)
                sizes.append(len(source))
                continue
            try:
                fd, status = open_regular(source, follow_links=False,
                                          exact=bool(exact and exact[position]))
            except OSError as exc:
                raise FileReadError(position, exc.strerror or str(exc)) from exc
            opened.append(fd)
            sizes.append(status.st_size)
            if max_bytes is not None and status.st_size > max_bytes:
                raise FileReadError(position, too_large(status.st_size, max_bytes))
        data = pa.allocate_buffer(sum(sizes))
        view, beyond, offset = memoryview(data).cast("B"), bytearray(1), 0
        for position, (handle, size) in enumerate(zip(opened, sizes, strict=True)):
            part = view[offset:offset + size]
            if isinstance(handle, bytes):
                part[:] = handle
            else:
                try:
                    read = os.readv(handle, [part, beyond])
                except OSError as exc:
                    raise FileReadError(position, exc.strerror or str(exc)) from exc
                if read != size:  # shorter, or one byte beyond the size fstat gave
                    raise FileReadError(position, "it changed while it was read")
            offset += size
    finally:
        for handle in opened:
            if isinstance(handle, int):
                os.close(handle)
    offsets = array("i", accumulate(sizes, initial=0))  # OverflowError past 2 GiB
    return pa.Array.from_buffers(pa.binary(), len(sizes), [None, pa.py_buffer(offsets), data])
