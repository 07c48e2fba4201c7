"""The project page's own plots (registered in :mod:`annotations.plots` at start-up):
class counts, the original-vs-reviewed label matrix, decisions per day and the audit
error estimate over time."""

from __future__ import annotations

from annotations.consensus import DECISIONS
from annotations.dashboards import change_matrix
from annotations.models import Project
from annotations.plots import (
    MUTED,
    PURPLE,
    RED,
    TEAL,
    Plot,
    bars,
    heatmap,
    rate_line,
    register_plot,
    stacked_columns,
)
from annotations.stats import class_counts, decisions_by_day
from annotations.timeline import audit_error_by_day

ACTION_COLOURS = {"confirm": TEAL, "correct": RED, "unsure": "#f79009", "exclude": MUTED,
                  "adjudicate": PURPLE}


def class_counts_plot(project: Project) -> Plot | None:
    counts = class_counts(project)
    if not counts:
        return None
    return bars("class_counts", f"Patches per class in {project.name}: original vs current",
                [c.name for c in counts],
                [("original", [c.original for c in counts], "#98a2b3"),
                 ("current", [c.current for c in counts], PURPLE)])


def change_matrix_plot(project: Project) -> Plot | None:
    names, matrix = change_matrix(project)
    if not names or not any(map(any, matrix)):
        return None
    return heatmap("change_matrix", "Original vs reviewed label (settled patches)", names,
                   names, matrix, "original label", "reviewed label")


def decisions_plot(project: Project) -> Plot | None:
    days = decisions_by_day(project)
    if not days:
        return None
    actions = [str(a) for a in DECISIONS if any(counts.get(a) for _, counts in days)]
    return stacked_columns(
        "decisions", "Review decisions per day", [d.isoformat() for d, _ in days],
        [(a, [counts.get(a, 0) for _, counts in days], ACTION_COLOURS.get(a, MUTED))
         for a in actions])


def audit_error_plot(project: Project) -> Plot | None:
    days = audit_error_by_day(project)
    if not days:
        return None
    notes = [f"{d.wrong} of {d.settled} settled that day wrong; {d.wrong_total} of "
             f"{d.reviewed} so far, error rate {d.rate:.0%} (95% CI {d.low:.0%}–{d.high:.0%})"
             for d in days]
    return rate_line("audit_error", "Audit sample: estimated label error rate over time",
                     [d.day.isoformat() for d in days], [d.rate for d in days],
                     [d.low for d in days], [d.high for d in days], notes)


def register_plots() -> None:
    register_plot("class_counts", class_counts_plot)
    register_plot("change_matrix", change_matrix_plot)
    register_plot("decisions", decisions_plot)
    register_plot("audit_error", audit_error_plot)
