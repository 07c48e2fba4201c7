"""Per-patch review statistics for exports: how many reviewers decided, and how they agreed.

Derived by annotations.consensus, like the patch's label itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from annotations.consensus import agreement, derive, histories
from annotations.models import Patch

CHUNK = 5000


@dataclass(frozen=True)
class ReviewStats:
    n_reviews: int  # distinct reviewers with an effective (not undone) decision
    agreement: float | None  # share of them agreeing with the settled outcome
    reviewers: tuple[str, ...]  # their usernames, sorted


NO_REVIEWS = ReviewStats(0, None, ())


def review_stats(patch_ids: Iterable[int]) -> dict[int, ReviewStats]:
    """{patch id: stats} for every id given (patches without decisions get ``NO_REVIEWS``),
    from the same consensus rules that set the label (undo, reopen, one vote per reviewer)."""
    ids = list(patch_ids)
    result: dict[int, ReviewStats] = {}
    for start in range(0, len(ids), CHUNK):
        history = histories(ids[start:start + CHUNK])
        # Most patches of a dataset were never reviewed: no decisions to derive.
        reviewed = [patch_id for patch_id, reviews in history.items() if reviews]
        result.update((patch_id, NO_REVIEWS) for patch_id, reviews in history.items()
                      if not reviews)
        if not reviewed:
            continue
        patches = Patch.objects.filter(pk__in=reviewed).values_list(
            "id", "original_label_id", "project__reviews_required")
        for patch_id, original, required in patches:
            state = derive(history[patch_id], original, required)
            if not state.decisions:
                result[patch_id] = NO_REVIEWS
                continue
            names = tuple(sorted(r.reviewer.get_username() for r in state.decisions.values()))
            result[patch_id] = ReviewStats(len(state.decisions), agreement(state), names)
    return result
