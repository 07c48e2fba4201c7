"""Review dashboards: reviewer throughput and agreement, Cohen's kappa, label change matrix.

Computed from the review history with the same consensus rules that set the labels, so the
numbers describe what the labels are (on the reviewers page, as of a moment at most
:data:`DASHBOARD_MAX_AGE` seconds ago, which the page states).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations

from django.core.cache import cache
from django.utils import timezone

from annotations.consensus import Outcome, derive, histories, outcome, settled_outcome
from annotations.counts import Counts, project_counts
from annotations.models import Patch, Project, Review, ReviewAction, ReviewSource
from annotations.stats import settled_pairs

DASHBOARD_MAX_AGE = 60  # seconds the reviewer figures may lag while reviews come in


@dataclass(frozen=True)
class ReviewerRow:
    username: str
    decisions: int  # one at a time (the review page, the decisions endpoint)
    per_hour: float | None  # those decisions per hour over the hours in which they made them
    median_seconds: float | None  # time spent per timed decision
    agreement: float | None  # share of their decisions on settled patches matching it
    compared: int  # settled patches they decided that someone else decided too
    grid_decisions: int = 0  # made in a batch (grid mode): untimed, counted apart


@dataclass(frozen=True)
class PairKappa:
    first: str
    second: str
    items: int  # patches both decided (double reads)
    kappa: float | None
    observed: float | None


def _consensus_by_patch(project: Project):
    reviewed = list(Patch.objects.filter(project=project, decisions__gt=0)
                    .values_list("id", "original_label_id"))
    history = histories([pid for pid, _ in reviewed])
    return {pid: derive(history[pid], original, project.reviews_required)
            for pid, original in reviewed}


@dataclass(frozen=True)
class Dashboard:
    rows: list[ReviewerRow]
    pairs: list[PairKappa]
    signature: str  # the review state it was computed from (see _signature)
    computed_at: datetime


def _signature(project: Project) -> str:
    """What the figures depend on, read in constant time from the kept counts: the number of
    reviews (append-only: each decision adds one), the patches by status, the rule."""
    counts = project_counts(project)
    return json.dumps([counts.get("reviews"), sorted(counts.of("status").items()),
                       project.reviews_required])


def reviewer_dashboard(project: Project) -> Dashboard:
    """The reviewer rows and kappas, computed from the whole review history (O(reviews)) at
    most once per change of it, and not more often than every
    :data:`DASHBOARD_MAX_AGE` seconds while reviews come in: between two, the page shows the
    last figures and says when they were computed."""
    key = f"reviewer-dashboard:{project.pk}:{project.created_at.timestamp()}"
    signature = _signature(project)
    found = cache.get(key)
    now = timezone.now()
    if isinstance(found, Dashboard) and (
            found.signature == signature or (now - found.computed_at).total_seconds()
            < DASHBOARD_MAX_AGE):
        return found
    states = _consensus_by_patch(project)
    dashboard = Dashboard(_reviewer_rows(project, states), _pair_kappas(states), signature, now)
    cache.set(key, dashboard, timeout=24 * 3600)
    return dashboard


def reviewer_rows(project: Project) -> list[ReviewerRow]:
    return _reviewer_rows(project, _consensus_by_patch(project))


def pair_kappas(project: Project) -> list[PairKappa]:
    """Cohen's kappa for every pair of reviewers over the patches both decided."""
    return _pair_kappas(_consensus_by_patch(project))


def _reviewer_rows(project: Project, states: dict) -> list[ReviewerRow]:
    hours: dict[str, set] = defaultdict(set)
    spent: dict[str, list[int]] = defaultdict(list)
    counts: Counter = Counter()
    grid: Counter = Counter()
    for name, created, ms, source in (Review.objects.filter(
            patch__project=project, action__in=[a.value for a in ReviewAction
                                                if a not in ("comment", "undo", "reopen")])
            .values_list("reviewer__username", "created_at", "time_spent_ms", "source")):
        if source == ReviewSource.BATCH:
            grid[name] += 1
            continue
        counts[name] += 1
        hours[name].add(created.replace(minute=0, second=0, microsecond=0))
        if ms is not None:
            spent[name].append(ms)
    agree: Counter = Counter()
    compared: Counter = Counter()
    for state in states.values():
        settled = settled_outcome(state)
        if settled is None or len(state.decisions) < 2:  # a lone reader agrees with itself
            continue
        for review in state.decisions.values():
            name = review.reviewer.get_username()
            compared[name] += 1
            agree[name] += outcome(review) == settled
    rows = []
    for name in sorted(counts | grid):
        times = sorted(spent[name])
        rows.append(ReviewerRow(
            name, counts[name], counts[name] / len(hours[name]) if hours[name] else None,
            times[len(times) // 2] / 1000 if times else None,
            agree[name] / compared[name] if compared[name] else None, compared[name],
            grid[name]))
    return rows


def _pair_kappas(states: dict) -> list[PairKappa]:
    pairs: dict[tuple[str, str], list[tuple[Outcome, Outcome]]] = defaultdict(list)
    for state in states.values():
        decided = sorted((r.reviewer.get_username(), outcome(r))
                         for r in state.decisions.values())
        for (a, oa), (b, ob) in combinations(decided, 2):
            pairs[(a, b)].append((oa, ob))
    return [PairKappa(a, b, len(votes), *cohen_kappa(votes)) for (a, b), votes in
            sorted(pairs.items())]


def cohen_kappa(votes: Sequence[tuple[object, object]]) -> tuple[float | None, float | None]:
    """(kappa, observed agreement) of paired categorical ratings; kappa None if undefined."""
    if not votes:
        return None, None
    n = len(votes)
    observed = sum(a == b for a, b in votes) / n
    first, second = Counter(a for a, _ in votes), Counter(b for _, b in votes)
    expected = sum(first[k] * second[k] for k in first) / (n * n)
    if expected == 1:
        return None, observed
    return (observed - expected) / (1 - expected), observed


def change_matrix(project: Project, counts: Counts | None = None,
                  ) -> tuple[list[str], list[list[int]]]:
    """(class names, rows = original label, columns = reviewed label) over settled patches
    (confirmed or corrected), from the project's kept counts."""
    classes = list(project.classes.order_by("index").values_list("id", "name"))
    position = {cid: i for i, (cid, _) in enumerate(classes)}
    matrix = [[0] * len(classes) for _ in classes]
    for (original, current), n in settled_pairs(project, counts).items():
        if original in position and current in position:
            matrix[position[original]][position[current]] += n
    return [name for _, name in classes], matrix
