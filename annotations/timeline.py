"""Review activity per day: decisions made, and the audit sample's error estimate as it grew.

The audit days use the same sample as :func:`annotations.queues.audit_estimate` (the seeded
hash of the patch id) and the same rule (settled items: confirmed or corrected; corrected
means the original label was wrong), so the last day's cumulative estimate is the one the
project page states.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Count, Max, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotations.consensus import DECISIONS
from annotations.models import Patch, PatchStatus, Project, Review
from annotations.queues import audit_key, in_audit_sample, wilson_interval

MAX_FILLED_DAYS = 400  # beyond this span, only the days with activity are listed


def _days(found: set[date]) -> list[date]:
    """The days from the first to the last found, gaps filled (within reason)."""
    if not found:
        return []
    first, last = min(found), max(found)
    if (last - first).days >= MAX_FILLED_DAYS:
        return sorted(found)
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def decisions_by_day(project: Project) -> list[tuple[date, dict[str, int]]]:
    """(day, {action: decisions made that day}) in order, every decision action counted."""
    rows = (Review.objects.filter(patch__project=project, action__in=DECISIONS)
            .annotate(day=TruncDate("created_at")).values_list("day", "action")
            .annotate(n=Count("id")).order_by())
    by_day: dict[date, Counter] = {}
    for day, action, n in rows:
        by_day.setdefault(day, Counter())[action] += n
    return [(day, dict(by_day.get(day, {}))) for day in _days(set(by_day))]


@dataclass(frozen=True)
class AuditDay:
    """Audit items settled on ``day``, and the estimate over all settled up to its end."""

    day: date
    settled: int
    wrong: int
    reviewed: int  # cumulative
    wrong_total: int  # cumulative
    rate: float
    low: float
    high: float


def audit_error_by_day(project: Project) -> list[AuditDay]:
    """The audit error estimate day by day, each item counted on the day its last decision
    settled it."""
    settled = (Patch.objects.filter(project=project, status__in=[PatchStatus.CONFIRMED,
                                                                  PatchStatus.CORRECTED])
               .annotate(audit_key=audit_key(project)).filter(in_audit_sample(project))
               .annotate(settled_at=Max("reviews__created_at",
                                        filter=Q(reviews__action__in=DECISIONS)))
               .values_list("status", "settled_at"))
    counts: dict[date, Counter] = {}
    for status, at in settled:
        if at is None:
            continue
        day = timezone.localdate(at)
        counts.setdefault(day, Counter())[status] += 1
    out, reviewed, wrong = [], 0, 0
    for day in _days(set(counts)):
        c = counts.get(day, Counter())
        day_wrong = c[PatchStatus.CORRECTED]
        day_settled = day_wrong + c[PatchStatus.CONFIRMED]
        reviewed, wrong = reviewed + day_settled, wrong + day_wrong
        rate, low, high = wilson_interval(wrong, reviewed)
        out.append(AuditDay(day, day_settled, day_wrong, reviewed, wrong, rate, low, high))
    return out
