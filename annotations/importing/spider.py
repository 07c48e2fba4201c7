"""Import a SPIDER dataset (extracted folder or multi-part archive) into a project."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import TypeVar

from django.conf import settings

from annotations.models import ImportJob, Patch, Project
from annotations.organs import organ_classes

from .errors import SourceError
from .records import BadRecord, SpiderRecord, parse_spider_record
from .report import ImportReport
from .roots import confinement
from .run import Progress, finish_job, import_run, job_progress, no_progress, start_job
from .sources import FolderSource, TarStream, iter_records
from .validation import unsafe_name_reason
from .writer import FetchedFile, FileReader, ProjectWriter

MISSING_FROM_ARCHIVE = "file not found in the archive's images/"

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

    def read(name: str) -> FileReader:
        def reader() -> tuple[bytes | str, str | None]:
            if reason := unsafe_name_reason(name):
                return reason, None
            file = source.path_of(name)
            if file is None:
                return "file name points outside the dataset folder", None
            try:
                data = file.read_bytes()
            except FileNotFoundError:
                return f"file not found: images/{name}", None
            except OSError as exc:
                return f"cannot read images/{name}: {exc.strerror or exc}", None
            return data, (str(file) if link else None)
        return reader

    def fetch(names: list[str]) -> list[FetchedFile]:
        return writer.fetch_parallel([(name, read(name)) for name in names], expected_size=224)

    with import_run(writer, strict=strict) as batch_context, open(source.metadata, "rb") as handle:
        for batch in batched(iter_records(handle), settings.SPIDER_IMPORT_BATCH):
            with batch_context():
                _import_records(writer, batch, fetch)
            tick(handle.tell(), total, "bytes")


def _import_tar_source(project: Project, stream: TarStream, report: ImportReport, *,
                       allowed: Iterable[str] | None, strict: bool, job: ImportJob | None,
                       progress: Progress) -> None:
    writer = ProjectWriter(project, job, report, allowed_classes=allowed)
    total = stream.reader.total
    start_job(job, total, "bytes")
    tick = job_progress(job, progress)

    def as_reader(value: bytes | str) -> FileReader:
        return lambda: (value, None)

    with import_run(writer, strict=strict) as batch_context:
        # Pass 1: every image in the archive is checked and stored as it streams past.
        for batch in batched(stream.members(settings.SPIDER_MAX_TILE_BYTES),
                             settings.SPIDER_IMPORT_BATCH):
            fetched = writer.fetch_parallel([(name, as_reader(v)) for name, v in batch],
                                            expected_size=224)
            with batch_context():
                writer.register_files(fetched)
            tick(stream.reader.position, total, "bytes")

        # Pass 2: the records, resolved against what pass 1 stored.
        def fetch(names: list[str]) -> list[FetchedFile]:
            return writer.fetch_parallel([(n, as_reader(MISSING_FROM_ARCHIVE)) for n in names],
                                         expected_size=224)

        assert stream.metadata is not None
        with stream.metadata as handle:
            for records in batched(iter_records(handle), settings.SPIDER_IMPORT_BATCH):
                with batch_context():
                    _import_records(writer, records, fetch)
        with batch_context():
            writer.prune_unreferenced()


def _import_records(writer: ProjectWriter, batch: list[tuple[int, object]], fetch: Fetch) -> None:
    """Turn one batch of raw records into patches (skipping and reporting bad ones)."""
    report = writer.report
    records: list[SpiderRecord] = []
    first_index: dict[str, int] = {}
    for index, raw in batch:
        report.records += 1
        try:
            record = parse_spider_record(index, raw)
        except BadRecord as bad:
            report.skip(index, bad.file, bad.reason)
            continue
        if problem := writer.class_problem(record.label):
            report.skip(index, record.image_name, problem)
            continue
        if record.image_name in first_index:
            first = first_index[record.image_name]
            report.skip(index, record.image_name,
                        f"duplicate image_name (first used by record {first})")
            continue
        first_index[record.image_name] = index
        records.append(record)
    if not records:
        return
    existing = writer.existing_patches({r.image_name for r in records})
    tiles = writer.resolve_tiles({n for r in records for n in r.grid_names if n}, fetch)
    slides = writer.slide_ids({r.slide for r in records if r.image_name not in existing})
    patches: list[Patch] = []
    for record in records:
        if record.image_name in existing:
            if writer.made_by_this_run(existing[record.image_name]):
                report.skip(record.index, record.image_name,
                            "duplicate image_name (an earlier record of this import has it)")
            else:
                report.patches_existing += 1
            continue
        grid: list[int | None] = []
        unusable: tuple[str, str] | None = None  # the first grid file that cannot be used, why
        for name in record.grid_names:
            if not name:
                grid.append(None)
                continue
            tile = tiles[name]
            if isinstance(tile, str):
                unusable = (name, tile)
                break
            grid.append(tile)
        if unusable is not None:
            report.skip(record.index, *unusable)
            continue
        if record.missing:
            report.note(record.index, record.image_name,
                        f"context missing at {', '.join(record.missing)}: shown blank")
        patches.append(writer.new_patch(
            slide_id=slides[record.slide], split=record.split, image_name=record.image_name,
            grid=grid,
            label_id=writer.label_id(record.label)))
    writer.create_patches(patches)
