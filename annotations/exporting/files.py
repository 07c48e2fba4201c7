"""Output folders, file hashes and deterministic zips of an export."""

from __future__ import annotations

import hashlib
import shutil
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import ExportError

ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same export gives the same zip


def prepare_folder(out: Path) -> Path:
    """``out`` as a new or empty folder; never writes over earlier files."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ExportError(f"{out} exists and is not an empty folder; choose a new or empty one")
    out.mkdir(parents=True, exist_ok=True)
    return out


@contextmanager
def all_or_nothing(out: Path, *entries: str) -> Iterator[Path]:
    """``out`` as a new or empty folder (:func:`prepare_folder`) for the block to write into.
    If the block fails (an unreadable tile, a full disk, a cancelled job), the ``entries``
    it writes (files or folders under ``out``) are removed, and ``out`` too when it was made
    here: the user's folder is left as it was."""
    created = not Path(out).exists()
    folder = prepare_folder(out)
    try:
        yield folder
    except BaseException:
        for entry in entries:
            path = folder / entry
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if created:
            folder.rmdir()
        raise


def prepare_file(out: Path) -> Path:
    out = Path(out)
    if out.exists():
        raise ExportError(f"{out} exists already; choose a new file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(root: Path) -> dict[str, str]:
    """{path relative to root (posix): sha256} of every file, sorted by path."""
    return {path.relative_to(root).as_posix(): sha256_file(path)
            for path in sorted(p for p in root.rglob("*") if p.is_file())}


def snapshot_id(hashes: dict[str, str]) -> str:
    """One sha256 naming a set of files by their contents."""
    text = "".join(f"{sha}  {path}\n" for path, sha in sorted(hashes.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def write_zip(root: Path, target: Path, prefix: str) -> None:
    """Zip ``root`` under ``prefix/`` with sorted entries and fixed times, streamed per file."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(f"{prefix}/{path.relative_to(root).as_posix()}", ZIP_EPOCH)
            info.external_attr = 0o644 << 16
            with open(path, "rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                while block := src.read(1 << 20):
                    dst.write(block)
