"""Readers of a SPIDER dataset: an extracted folder, or its multi-part tar read as a stream."""

from __future__ import annotations

import io
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

import ijson

from annotations.localfiles import too_large

from .errors import SourceError
from .roots import Confinement

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class ConcatReader(io.RawIOBase):
    """The parts ``spider-<organ>.tar.aa, .ab, ...`` read back to back as one stream."""

    def __init__(self, parts: list[Path]) -> None:
        self.parts = parts
        self.total = sum(p.stat().st_size for p in parts)
        self.position = 0
        self._index = 0
        self._handle: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while self._index < len(self.parts):
            if self._handle is None:
                self._handle = open(self.parts[self._index], "rb")  # noqa: SIM115
            n = self._handle.readinto(buffer)
            if n:
                self.position += n
                return n
            self._handle.close()
            self._handle = None
            self._index += 1
        return 0

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
        super().close()


def find_tar_parts(folder: Path) -> list[Path]:
    """The archive parts in ``folder``, in the order ``cat spider-*.tar.*`` would read them."""
    parts = sorted(p for p in folder.glob("spider-*.tar*") if p.is_file())
    if not parts:
        parts = sorted(p for p in folder.glob("*.tar*") if p.is_file())
    return parts


def iter_records(handle: IO[bytes]) -> Iterator[tuple[int, object]]:
    """Stream the entries of metadata.json's top-level array without loading it whole."""
    try:
        yield from enumerate(ijson.items(handle, "item", use_float=True))
    except ijson.JSONError as exc:
        raise SourceError(f"metadata.json is not a valid JSON array: {json_reason(exc)}"
                          ) from exc


def json_reason(exc: Exception) -> str:
    """The parser's reason without the text it quotes: yajl's message goes on to print the
    bytes around the error, which would put a file's content in front of every member."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return reason[:120]


class FolderSource:
    """An extracted ``SPIDER-<organ>/`` folder: ``metadata.json`` and a flat ``images/``
    (its files are read by the file-check processes, :mod:`.filecheck`)."""

    def __init__(self, root: Path, confine: Confinement | None = None) -> None:
        self.root = root
        self.metadata = root / "metadata.json"
        self.images = (root / "images").resolve()
        if not self.metadata.is_file():
            raise SourceError(f"{self.metadata}: not found")
        if not self.images.is_dir():
            raise SourceError(f"{root / 'images'}: not a folder")
        if confine is not None:  # images/ confined, so is every file read resolves into it
            self.metadata = confine.check(self.metadata, str(root / "metadata.json"))
            self.images = confine.check(self.images, str(root / "images"))


def image_member_name(member_name: str) -> str | None:
    """The name a record uses for an archive member under ``images/``, else None."""
    parts = PurePosixPath(member_name).parts
    if "images" not in parts:
        return None
    rest = parts[parts.index("images") + 1:]
    return "/".join(rest) if rest else None


class TarStream:
    """Members of the archive in stream order; metadata.json is spooled to a temporary file."""

    def __init__(self, folder: Path, confine: Confinement | None = None) -> None:
        self.parts = find_tar_parts(folder)
        if not self.parts:
            raise SourceError(f"{folder}: no metadata.json and no spider-<organ>.tar.* parts")
        if confine is not None:
            self.parts = [confine.check(part, str(part)) for part in self.parts]
        self.reader = ConcatReader(self.parts)
        self.metadata: IO[bytes] | None = None

    def members(self, max_bytes: int) -> Iterator[tuple[str, bytes | str]]:
        """Yield (image name, bytes or a reason) for every image member."""
        try:
            with tarfile.open(fileobj=io.BufferedReader(self.reader, 1 << 20), mode="r|*") as tar:
                for member in tar:
                    if PurePosixPath(member.name).name == "metadata.json" and member.isfile():
                        self.metadata = tempfile.TemporaryFile()  # noqa: SIM115 (closed by the reader)
                        extracted = tar.extractfile(member)
                        assert extracted is not None
                        while chunk := extracted.read(1 << 20):
                            self.metadata.write(chunk)
                        self.metadata.seek(0)
                        continue
                    name = image_member_name(member.name)
                    if name is None:
                        continue
                    if not member.isfile():
                        yield name, "archive member is not a regular file (link or device)"
                    elif member.size > max_bytes:
                        yield name, too_large(member.size, max_bytes)
                    else:
                        extracted = tar.extractfile(member)
                        assert extracted is not None
                        yield name, extracted.read()
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise SourceError(f"{self.parts[0].parent}: cannot read archive: {exc}") from exc
        if self.metadata is None:
            raise SourceError(f"{self.parts[0].parent}: the archive holds no metadata.json")
