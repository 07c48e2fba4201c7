"""Counts shown on the project page and returned by the API.

All come from the counts PostgreSQL keeps per project (:mod:`annotations.counts`), so a
page costs the same at 10k patches as at 200k: no GROUP BY over the patches. Pass the
:class:`~annotations.counts.Counts` read once to the functions a page calls together.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from annotations.consensus import DECISIONS
from annotations.counts import Counts, decided_hours, project_counts, top_slides
from annotations.models import PatchStatus, Project
from annotations.queues import QUEUES, ErrorEstimate, QueueError, error_estimate, queue_queryset
from annotations.timeline import _days

QUEUE_COUNT_CAP = 500  # queue sizes past this show as "500+": counting all is O(patches)


@dataclass
class ClassCount:
    id: int
    index: int
    name: str
    colour: str
    hotkey: str
    original: int
    current: int


def _counts(project: Project, counts: Counts | None) -> Counts:
    return counts if counts is not None else project_counts(project)


def patch_count(project: Project, counts: Counts | None = None) -> int:
    return _counts(project, counts).get("all")


def class_counts(project: Project, counts: Counts | None = None) -> list[ClassCount]:
    counts = _counts(project, counts)
    original, current = counts.of("original"), counts.of("current")
    return [ClassCount(c.id, c.index, c.name, c.colour, c.hotkey, original.get(str(c.id), 0),
                       current.get(str(c.id), 0))
            for c in project.classes.order_by("index")]


def status_counts(project: Project, counts: Counts | None = None) -> dict[str, int]:
    found = _counts(project, counts).of("status")
    return {status.label: found.get(status.value, 0) for status in PatchStatus}


def split_counts(project: Project, counts: Counts | None = None) -> dict[str, int]:
    found = _counts(project, counts).of("split")
    return {(split or "none"): n for split, n in sorted(found.items())}


def slide_counts(project: Project, limit: int = 25) -> tuple[int, list[dict]]:
    """(number of slides, the ``limit`` slides with most patches)."""
    return project.slides.count(), top_slides(project, limit)


def settled_pairs(project: Project, counts: Counts | None = None) -> dict[tuple[int, int], int]:
    """{(original label id, current label id): confirmed or corrected patches}."""
    out = {}
    for key, n in _counts(project, counts).of("settled").items():
        original, current = key.split(":")
        if original and current:
            out[(int(original), int(current))] = n
    return out


def audit_estimate(project: Project, counts: Counts | None = None) -> ErrorEstimate:
    """:func:`annotations.queues.audit_estimate` from the counts (same sample, same rule)."""
    return error_estimate(_counts(project, counts).of("audit"))


def decisions_by_day(project: Project) -> list[tuple[date, dict[str, int]]]:
    """:func:`annotations.timeline.decisions_by_day` from the counts: (local day, {action:
    decisions}); the counts keep UTC hours, so a zone offset by a half hour puts a half
    hour's decisions on a neighbouring day."""
    by_day: dict[date, Counter] = {}
    for hour, action, n in decided_hours(project):
        if action in DECISIONS:
            by_day.setdefault(timezone.localdate(hour), Counter())[action] += n
    return [(day, dict(by_day.get(day, {}))) for day in _days(set(by_day))]


class QueueSize(int):
    """Items left in a queue, counted up to a cap; shown as "1000+" when it got there."""

    capped: bool = False

    def __str__(self) -> str:
        return f"{int(self)}+" if self.capped else str(int(self))


def queue_sizes(project: Project, cap: int = QUEUE_COUNT_CAP,
                counts: Counts | None = None) -> dict[str, QueueSize | None]:
    """Items left per queue (None: the queue cannot run yet).

    The audit and disputed queues are the kept counts (unreviewed patches of the audit
    sample, disputed patches: exact, one read for both). The others are counted up to
    ``cap``: counting them whole reads all their rows (O(patches)); stopping at ``cap``
    reads at most ``cap`` (the model's queues walk their index).
    """
    kept = _counts(project, counts)
    exact = {"audit": kept.get("audit", PatchStatus.UNREVIEWED),
             "disputed": kept.get("status", PatchStatus.DISPUTED)}
    sizes: dict[str, QueueSize | None] = {}
    for name in QUEUES:
        try:
            queue = queue_queryset(project, name)  # builds the query, runs nothing
        except QueueError:  # needs a model, or scores the model does not have
            sizes[name] = None
            continue
        if name in exact:
            sizes[name] = QueueSize(exact[name])
            continue
        found = queue.order_by()[: cap + 1].count()
        size = QueueSize(min(found, cap))
        size.capped = found > cap
        sizes[name] = size
    return sizes
