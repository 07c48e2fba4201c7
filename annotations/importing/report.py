"""What an import did, in the shape ``--json`` prints."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# Notes kept one by one; past this only their counts grow. A SPIDER-size import notes about
# one record in three (edge patches lack context): 56k notes at 160k records made the report,
# the job's summary and the --json output grow with the dataset (RSS 120 MiB at 20k records,
# 183 MiB at 160k) and every project page loaded the whole summary.
NOTES_KEPT = 1000
# Skipped records kept one by one; past this only skipped_total grows. A metadata.json of a
# million bad records (a wrong folder, or hostile input to a browser-started import) would
# otherwise hold them all in memory and in the job's summary.
SKIPS_KEPT = 1000


# slots: a SPIDER-size import notes ~1 in 3 of 160k records (edge patches lack context)
@dataclass(frozen=True, slots=True)
class SkippedRecord:
    index: int | None
    file: str
    reason: str


@dataclass(frozen=True, slots=True)
class RecordNote:
    index: int | None
    file: str
    note: str


@dataclass
class ImportReport:
    records: int = 0
    patches_created: int = 0
    patches_existing: int = 0
    tiles_created: int = 0
    tiles_reused: int = 0
    classes: list[str] = field(default_factory=list)
    slides: int = 0
    skipped: list[SkippedRecord] = field(default_factory=list)  # the first SKIPS_KEPT
    skipped_total: int = 0
    notes: list[RecordNote] = field(default_factory=list)  # the first NOTES_KEPT
    note_counts: Counter[str] = field(default_factory=Counter)  # every note, by its text

    def skip(self, index: int | None, file: str, reason: str) -> None:
        self.skipped_total += 1
        if len(self.skipped) < SKIPS_KEPT:
            self.skipped.append(SkippedRecord(index, file, reason))

    def note(self, index: int | None, file: str, note: str) -> None:
        self.note_counts[note] += 1
        if len(self.notes) < NOTES_KEPT:
            self.notes.append(RecordNote(index, file, note))

    @property
    def notes_total(self) -> int:
        return self.note_counts.total()

    def as_dict(self) -> dict[str, Any]:
        """What ``dataclasses.asdict`` gives, built directly: its deep copy of every note
        costs seconds at 160k records."""
        return {"records": self.records, "patches_created": self.patches_created,
                "patches_existing": self.patches_existing, "tiles_created": self.tiles_created,
                "tiles_reused": self.tiles_reused, "classes": list(self.classes),
                "slides": self.slides,
                "skipped": [{"index": s.index, "file": s.file, "reason": s.reason}
                            for s in self.skipped],
                "skipped_total": self.skipped_total,
                "notes": [{"index": n.index, "file": n.file, "note": n.note}
                          for n in self.notes],
                "note_counts": dict(self.note_counts.most_common()),
                "notes_total": self.notes_total}

    def summary_line(self) -> str:
        if self.patches_created == 0 and self.records and not self.skipped_total:
            head = f"Nothing new: all {self.patches_existing} patches were already imported."
        else:
            head = (f"Imported {self.patches_created} new patches "
                    f"({self.patches_existing} already present)")
        return (f"{head} Records {self.records}, tiles {self.tiles_created} new / "
                f"{self.tiles_reused} reused, {len(self.classes)} classes, {self.slides} slides, "
                f"{self.skipped_total} skipped, {self.notes_total} notes.")
