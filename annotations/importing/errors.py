"""Errors an import raises to its caller (bad records are reported, not raised)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .report import ImportReport


class SourceError(Exception):
    """The source as a whole cannot be read (no metadata.json, unreadable archive, ...)."""


class ImportAborted(Exception):
    """A ``--strict`` import met bad records and rolled everything back."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        n = report.skipped_total
        first = report.skipped[0]
        super().__init__(
            f"{n} bad record(s); nothing was imported. First: record {first.index} "
            f"({first.file}): {first.reason}"
        )
