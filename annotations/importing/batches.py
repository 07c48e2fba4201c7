"""A batch of SPIDER records -> patches, in two halves so batches overlap.

:func:`prepare_batch` parses the records and starts reading and checking the files no tile
has yet (on the writer's pool); :func:`write_batch` waits for those files and writes the
batch's rows. :func:`pipelined` prepares batches N+1 and N+2 before writing batch N, so the
files of the next two batches are read, hashed and checked (I/O, sha256 and CRCs release
the GIL) while the database takes this one. One batch ahead was not enough: the reads of
the next batch only started once this one's write was done, and each write then waited
for part of them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from .errors import SourceError
from .records import BadRecord, SpiderRecord, parse_spider_record
from .rows import PatchRow
from .writer import FetchedFile, ProjectWriter

# fetch_later(names): start reading, checking and storing the named files; the result waits.
FetchLater = Callable[[list[str]], Callable[[], list[FetchedFile]]]
Skip = tuple[int | None, str, str]  # (record index, file, reason)
# Batches prepared (their files being read) before the oldest of them is written.
READ_AHEAD = 2


@dataclass
class PreparedBatch:
    """Parsed records of one batch and the pending read of their new files."""

    size: int
    records: list[SpiderRecord]
    skipped: list[Skip]
    names: set[str]  # every file the records name
    known: dict[str, int | str]  # tile id, or why unusable, of names seen before
    fetching: set[str]  # names whose files are being read for this batch
    fetched: Callable[[], list[FetchedFile]]
    resolved: dict[str, int | str] = field(default_factory=dict)  # filled by write_batch


def prepare_batch(writer: ProjectWriter, batch: list[tuple[int, object]],
                  fetch_later: FetchLater, pending: Container[str] = ()) -> PreparedBatch:
    """Parse ``batch`` (skipping bad records) and start fetching the files it needs.

    Files in ``pending`` are being fetched for batches prepared before this one; their
    writes resolve them (they run first).
    """
    records: list[SpiderRecord] = []
    skipped: list[Skip] = []
    first_index: dict[str, int] = {}
    for index, raw in batch:
        try:
            record = parse_spider_record(index, raw)
        except BadRecord as bad:
            skipped.append((index, bad.file, bad.reason))
            continue
        if problem := writer.class_problem(record.label):
            skipped.append((index, record.image_name, problem))
            continue
        if record.image_name in first_index:
            first = first_index[record.image_name]
            skipped.append((index, record.image_name,
                            f"duplicate image_name (first used by record {first})"))
            continue
        first_index[record.image_name] = index
        records.append(record)
    names = {name for record in records for name in record.grid_names if name}
    known, missing = writer.look_up_names(names, pending) if records else ({}, [])
    return PreparedBatch(len(batch), records, skipped, names, known, set(missing),
                         fetch_later(missing))


def write_batch(writer: ProjectWriter, prepared: PreparedBatch,
                earlier: Sequence[PreparedBatch] = ()) -> None:
    """Write the patches of ``prepared`` (``earlier``: the batches written just before it,
    whose files resolve the names this one left to them)."""
    report = writer.report
    report.records += prepared.size
    for skip in prepared.skipped:
        report.skip(*skip)
    resolved = writer.register_fetched(prepared.fetched())
    prepared.resolved = resolved
    if not prepared.records:
        return
    tiles = dict(prepared.known)
    tiles.update(resolved)
    if len(tiles) < len(prepared.names):
        # left to earlier batches (their files were being read when this one was prepared)
        for name in prepared.names - tiles.keys():
            tiles[name] = next(b.resolved[name] for b in earlier if name in b.resolved)
    writer.count_tiles(tiles)
    records = prepared.records
    existing = writer.existing_patches({r.image_name for r in records})
    slides = writer.slide_ids({r.slide for r in records if r.image_name not in existing})
    any_bad = any(isinstance(tile, str) for tile in tiles.values())
    rows: list[PatchRow] = []
    for record in records:
        if record.image_name in existing:
            if writer.made_by_this_run(existing[record.image_name]):
                report.skip(record.index, record.image_name,
                            "duplicate image_name (an earlier record of this import has it)")
            else:
                report.patches_existing += 1
            continue
        grid = [tiles[name] if name else None for name in record.grid_names]
        if any_bad and (unusable := first_unusable(record, grid)):
            report.skip(record.index, *unusable)
            continue
        if None in grid:
            report.note(record.index, record.image_name, missing_note(record))
        rows.append(PatchRow(slides[record.slide], record.split, record.image_name,
                             grid,  # type: ignore[arg-type]  # first_unusable: no reasons
                             writer.label_id(record.label)))
    writer.add_patch_rows(rows)


@lru_cache(maxsize=1024)
def _missing_note(missing: tuple[str, ...]) -> str:
    return f"context missing at {', '.join(missing)}: shown blank"


def missing_note(record: SpiderRecord) -> str:
    """The note for a record lacking context; one string per pattern (edge patches share a
    few), not one per record."""
    return _missing_note(tuple(record.missing))


def first_unusable(record: SpiderRecord, grid: list[int | str | None]
                   ) -> tuple[str, str] | None:
    """(file, reason) of the first grid file that cannot be used, if any."""
    for name, tile in zip(record.grid_names, grid, strict=True):
        if isinstance(tile, str):
            assert name is not None
            return name, tile
    return None


class _Fetching:
    """The names being fetched for the batches in ``ahead`` (a view, not a copy)."""

    def __init__(self, ahead: Iterable[PreparedBatch]) -> None:
        self.sets = [batch.fetching for batch in ahead]

    def __contains__(self, name: object) -> bool:
        return any(name in names for names in self.sets)


def pipelined(batches: Iterable[list[tuple[int, object]]],
              prepare: Callable[[list[tuple[int, object]], Container[str]], PreparedBatch],
              write: Callable[[PreparedBatch, Sequence[PreparedBatch]], None],
              depth: int = READ_AHEAD) -> None:
    """Prepare each batch ``depth`` batches before it is written (see the module docstring).

    When the metadata breaks off (:class:`SourceError`), the batches read before the break
    are still written, as they would be without the overlap; then the error goes on.
    """
    ahead: deque[PreparedBatch] = deque()
    written: deque[PreparedBatch] = deque(maxlen=depth)

    def write_oldest() -> None:
        oldest = ahead.popleft()
        write(oldest, tuple(reversed(written)))  # newest first: most names resolve there
        written.append(oldest)

    try:
        for batch in batches:
            ahead.append(prepare(batch, _Fetching(ahead)))
            if len(ahead) > depth:
                write_oldest()
    except SourceError:
        while ahead:
            write_oldest()
        raise
    while ahead:
        write_oldest()
