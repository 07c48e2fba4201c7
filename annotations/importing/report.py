"""What an import did, in the shape ``--json`` prints."""

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class SkippedRecord:
    index: int | None
    file: str
    reason: str


@dataclass(frozen=True)
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
    skipped: list[SkippedRecord] = field(default_factory=list)
    notes: list[RecordNote] = field(default_factory=list)

    def skip(self, index: int | None, file: str, reason: str) -> None:
        self.skipped.append(SkippedRecord(index, file, reason))

    def note(self, index: int | None, file: str, note: str) -> None:
        self.notes.append(RecordNote(index, file, note))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary_line(self) -> str:
        if self.patches_created == 0 and self.records and not self.skipped:
            head = f"Nothing new: all {self.patches_existing} patches were already imported."
        else:
            head = (f"Imported {self.patches_created} new patches "
                    f"({self.patches_existing} already present)")
        return (f"{head} Records {self.records}, tiles {self.tiles_created} new / "
                f"{self.tiles_reused} reused, {len(self.classes)} classes, {self.slides} slides, "
                f"{len(self.skipped)} skipped, {len(self.notes)} notes.")
