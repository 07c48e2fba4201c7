"""CSV export for spreadsheets: one line per patch with labels, reviewers and the model.

Names come from the imported dataset, so a text cell that a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is written
with a leading apostrophe, as OWASP advises against CSV injection, and every text cell is
quoted, so a ``;`` in a name cannot start a new cell in a locale that splits on it; numbers
are numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path

from annotations.importing.run import Progress, no_progress
from annotations.importing.spider import batched
from annotations.models import Project

from .errors import ExportError
from .files import prepare_file, sha256_file
from .result import ExportResult
from .rows import ClassList, ExportRow, iter_rows
from .selection import ALL_STATUSES, ExportFilter, selected, split_counts
from .summary import SnapshotStats

COLUMNS = ["patch_id", "slide_id", "split", "image_name", "original_label", "current_label",
           "status", "reviewers", "n_reviews", "agreement", "model_version",
           "model_prediction", "model_confidence", "slide_x", "slide_y"]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> object:
    """``value`` as a spreadsheet will show it, never as a formula it would run."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def line(row: ExportRow, classes: ClassList) -> list:
    return [cell(value) for value in values(row, classes)]


def values(row: ExportRow, classes: ClassList) -> list:
    opinion = row.opinion
    return [row.patch_id, row.slide, row.split, row.image_name,
            classes.name(row.original_label), classes.name(row.current_label), row.status,
            ";".join(row.stats.reviewers), row.stats.n_reviews,
            "" if row.stats.agreement is None else row.stats.agreement,
            opinion.model_version if opinion else "", opinion.predicted if opinion else "",
            opinion.confidence if opinion else "",
            "" if row.slide_x is None else row.slide_x, "" if row.slide_y is None else row.slide_y]


def export_csv(project: Project, out: Path, *, export_filter: ExportFilter | None = None,
               progress: Progress = no_progress) -> ExportResult:
    """All statuses by default: the table is for looking at the review, excluded included."""
    export_filter = export_filter or ExportFilter(ALL_STATUSES)
    patches = selected(project, export_filter)
    total = sum(split_counts(patches).values())
    if not total:
        raise ExportError(f"no patch of {project.slug!r} matches the filter "
                          f"({export_filter.describe()})")
    out = prepare_file(out)
    classes = ClassList.of(project)
    stats = SnapshotStats(classes)
    done = 0
    progress(0, total, "patches")
    try:  # all or nothing: a full disk or a cancelled job leaves no partial table
        with open(out, "w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(COLUMNS)  # plain names, as readers expect them
            # text quoted: a ; inside a name cannot start a cell where ; separates them
            writer = csv.writer(handle, quoting=csv.QUOTE_NONNUMERIC)
            for group in batched(iter_rows(project, patches), 1000):
                writer.writerows(line(row, classes) for row in group)
                stats.add(group)
                done += len(group)
                progress(done, total, "patches")
    except OSError as exc:  # a full disk, say
        out.unlink(missing_ok=True)
        raise ExportError(f"writing {out} failed: {exc.strerror or exc}") from exc
    except BaseException:
        out.unlink(missing_ok=True)
        raise
    return ExportResult(stats.as_dict(), {out.name: sha256_file(out)})
