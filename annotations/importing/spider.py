"""Import a SPIDER dataset (extracted folder or multi-part archive) into a project."""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

from django.conf import settings

from annotations.models import ImportJob, Project
from annotations.organs import organ_classes

from .batches import PreparedBatch, pipelined, prepare_batch, write_batch
from .errors import SourceError
from .filecheck import Layout
from .report import ImportReport
from .roots import confinement
from .run import Progress, finish_job, import_run, job_progress, no_progress, start_job
from .sources import FolderSource, TarStream, iter_records
from .validation import CheckedTile
from .writer import FetchedFile, ProjectWriter

MISSING_FROM_ARCHIVE = "file not found in the archive's images/"
# An archive's members are checked in batches of their bytes (the stream cannot be read
# twice), so this many tiles (~55 KB each) are held at once, whatever SPIDER_IMPORT_BATCH is.
ARCHIVE_MEMBERS_PER_BATCH = 500

T = TypeVar("T")
# fetch(names): read, check and store the files a batch's records name but no tile has yet.
Fetch = Callable[[list[str]], list[FetchedFile]]


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def import_spider(project: Project, path: str | Path, *, organ: str | None = None,
                  link: bool = False, strict: bool = False, job: ImportJob | None = None,
                  progress: Progress = no_progress,
                  roots: Sequence[Path] | None = None) -> ImportReport:
    """Import ``path``: a folder with metadata.json + images/, or one holding spider-*.tar.*.

    Bad records are skipped and listed in the report (``strict``: the whole import rolls back
    and :class:`ImportAborted` is raised). Re-importing the same data adds nothing. With
    ``roots`` (an import from the browser) every path read must resolve inside one of them.
    """
    root = Path(path)
    report = ImportReport()
    confine = confinement(roots)
    try:  # every failure, even of the arguments, is recorded on the job
        allowed = organ_classes(organ) if organ else None
        if confine is not None:
            root = confine.check(root, str(root))
        if not root.is_dir():
            raise SourceError(f"{root}: not a folder")
        if organ and not project.organ:
            project.organ = organ.lower()
            project.save(update_fields=["organ"])
        if (root / "metadata.json").is_file():
            _import_folder_source(project, FolderSource(root, confine), report, allowed=allowed,
                                  link=link, strict=strict, job=job, progress=progress)
        else:
            if link:
                raise SourceError("--link needs an extracted folder; an archive has no files "
                                  "to link to")
            _import_tar_source(project, TarStream(root, confine), report, allowed=allowed,
                               strict=strict, job=job, progress=progress)
    except Exception as exc:
        finish_job(job, report, error=str(exc))
        raise
    finish_job(job, report)
    return report


def _import_folder_source(project: Project, source: FolderSource, report: ImportReport, *,
                          allowed: Iterable[str] | None, link: bool, strict: bool,
                          job: ImportJob | None, progress: Progress) -> None:
    writer = ProjectWriter(project, job, report, allowed_classes=allowed)
    total = source.metadata.stat().st_size
    start_job(job, total, "bytes")
    tick = job_progress(job, progress)

    layout = Layout(str(source.images), link=link,
                    max_bytes=settings.SPIDER_MAX_TILE_BYTES, expected_size=224,
                    missing="file not found: images/{name}",
                    unreadable="cannot read images/{name}: {error}",
                    outside="file name points outside the dataset folder")

    def fetch_later(names: list[str]) -> Callable[[], list[FetchedFile]]:
        return writer.check_files_later(layout, names)

    with import_run(writer, strict=strict) as batch_context, open(source.metadata, "rb") as handle:
        def prepare(batch: list[tuple[int, object]], pending: Container[str]) -> PreparedBatch:
            return prepare_batch(writer, batch, fetch_later, pending)

        def write(prepared: PreparedBatch, earlier: Sequence[PreparedBatch]) -> None:
            with batch_context():
                write_batch(writer, prepared, earlier)
            tick(handle.tell(), total, "bytes")

        pipelined(batched(iter_records(handle), settings.SPIDER_IMPORT_BATCH), prepare, write)


def _import_tar_source(project: Project, stream: TarStream, report: ImportReport, *,
                       allowed: Iterable[str] | None, strict: bool, job: ImportJob | None,
                       progress: Progress) -> None:
    writer = ProjectWriter(project, job, report, allowed_classes=allowed)
    total = stream.reader.total
    start_job(job, total, "bytes")
    tick = job_progress(job, progress)

    with import_run(writer, strict=strict) as batch_context:
        # Pass 1: every image in the archive is checked and stored as it streams past.
        for batch in batched(stream.members(settings.SPIDER_MAX_TILE_BYTES),
                             min(settings.SPIDER_IMPORT_BATCH, ARCHIVE_MEMBERS_PER_BATCH)):
            fetched = writer.check_members(batch, expected_size=224)
            with batch_context():
                writer.register_files(fetched)
            tick(stream.reader.position, total, "bytes")

        # Pass 2: the records, resolved against what pass 1 stored.
        def fetch(names: list[str]) -> list[FetchedFile]:
            return [FetchedFile(name, CheckedTile(None, "", MISSING_FROM_ARCHIVE))
                    for name in names]

        assert stream.metadata is not None
        with stream.metadata as handle:
            for records in batched(iter_records(handle), settings.SPIDER_IMPORT_BATCH):
                with batch_context():
                    _import_records(writer, records, fetch)
        with batch_context():
            writer.prune_unreferenced()


def _import_records(writer: ProjectWriter, batch: list[tuple[int, object]], fetch: Fetch) -> None:
    """Turn one batch of raw records into patches (skipping and reporting bad ones)."""
    def fetch_now(names: list[str]) -> Callable[[], list[FetchedFile]]:
        fetched = fetch(names)
        return lambda: fetched

    write_batch(writer, prepare_batch(writer, batch, fetch_now))
