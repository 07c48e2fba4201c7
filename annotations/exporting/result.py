"""What every exporter returns: the counts for the job record and each file's sha256."""

from dataclasses import dataclass


@dataclass
class ExportResult:
    counts: dict
    files: dict[str, str]  # path relative to the export (or the file's name) -> sha256
