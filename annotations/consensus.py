"""Derive a patch's label and status from its review history (the only way they change).

Rules, applied to the reviews since the last ``reopen``:
- ``undo`` cancels the same reviewer's latest earlier decision that is still in force;
- each reviewer's latest decision in force counts once (changing your mind replaces it), and
  only the ``reviews_required`` most recent reviewers' decisions decide (with one read
  required, a later reviewer's decision re-settles the patch instead of disputing it);
- an adjudication in force settles the patch, whatever the reviewers said;
- otherwise, once ``reviews_required`` reviewers have decided: all the same outcome settles it
  (confirm/correct -> that label; all unsure -> unsure; all exclude -> excluded), any
  difference makes it ``disputed`` for an admin to adjudicate;
- until then the patch stays ``unreviewed`` with its original label (double reads are blind).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from annotations.models import PatchStatus, Review, ReviewAction

DECISIONS = (ReviewAction.CONFIRM, ReviewAction.CORRECT, ReviewAction.UNSURE,
             ReviewAction.EXCLUDE, ReviewAction.ADJUDICATE)
SETTLED = (PatchStatus.CONFIRMED, PatchStatus.CORRECTED, PatchStatus.UNSURE,
           PatchStatus.EXCLUDED)


@dataclass(frozen=True)
class Outcome:
    """What a decision says: a label (confirm/correct/adjudicate), or unsure, or exclude."""

    kind: str  # "label" | "unsure" | "exclude"
    label_id: int | None = None


@dataclass(frozen=True)
class Consensus:
    status: str
    label_id: int | None  # the current label
    decisions: dict[int, Review]  # reviewer id -> decision in force (adjudication excluded)
    adjudication: Review | None


def outcome(review: Review) -> Outcome:
    if review.action == ReviewAction.UNSURE:
        return Outcome("unsure")
    if review.action == ReviewAction.EXCLUDE:
        return Outcome("exclude")
    return Outcome("label", review.to_label_id)


def decisions_in_force(reviews: Sequence[Review]) -> tuple[dict[int, Review], Review | None]:
    """(reviewer id -> latest decision in force, adjudication in force) since the last reopen."""
    start = max((i + 1 for i, r in enumerate(reviews) if r.action == ReviewAction.REOPEN),
                default=0)
    stacks: dict[int, list[Review]] = {}
    for review in reviews[start:]:
        if review.action in DECISIONS:
            stacks.setdefault(review.reviewer_id, []).append(review)
        elif review.action == ReviewAction.UNDO and stacks.get(review.reviewer_id):
            stacks[review.reviewer_id].pop()
    adjudications = [s[-1] for s in stacks.values()
                     if s and s[-1].action == ReviewAction.ADJUDICATE]
    adjudication = max(adjudications, key=lambda r: r.id, default=None)
    decided = {reviewer: next((r for r in reversed(stack)
                               if r.action != ReviewAction.ADJUDICATE), None)
               for reviewer, stack in stacks.items()}
    return {k: v for k, v in decided.items() if v is not None}, adjudication


def derive(reviews: Sequence[Review], original_label_id: int | None,
           reviews_required: int) -> Consensus:
    """The status and current label that ``reviews`` (oldest first) amount to."""
    decisions, adjudication = decisions_in_force(reviews)
    if adjudication is not None:
        return Consensus(*_settle(outcome(adjudication), original_label_id), decisions,
                         adjudication)
    if len(decisions) < reviews_required:
        return Consensus(PatchStatus.UNREVIEWED, original_label_id, decisions, None)
    deciding = sorted(decisions.values(), key=lambda r: r.id)[-reviews_required:]
    outcomes = {outcome(r) for r in deciding}
    if len(outcomes) > 1:
        return Consensus(PatchStatus.DISPUTED, original_label_id, decisions, None)
    return Consensus(*_settle(outcomes.pop(), original_label_id), decisions, None)


def _settle(result: Outcome, original_label_id: int | None) -> tuple[str, int | None]:
    if result.kind == "unsure":
        return PatchStatus.UNSURE, original_label_id
    if result.kind == "exclude":
        return PatchStatus.EXCLUDED, original_label_id
    status = (PatchStatus.CONFIRMED if result.label_id == original_label_id
              else PatchStatus.CORRECTED)
    return status, result.label_id


def settled_outcome(consensus: Consensus) -> Outcome | None:
    """What a settled patch was decided to be (None while it is not settled)."""
    if consensus.status in (PatchStatus.CONFIRMED, PatchStatus.CORRECTED):
        return Outcome("label", consensus.label_id)
    if consensus.status == PatchStatus.UNSURE:
        return Outcome("unsure")
    if consensus.status == PatchStatus.EXCLUDED:
        return Outcome("exclude")
    return None


def agreement(consensus: Consensus) -> float | None:
    """Share of the decisions in force that match the settled outcome (None if unsettled)."""
    settled = settled_outcome(consensus)
    if settled is None or not consensus.decisions:
        return None
    matching = sum(outcome(r) == settled for r in consensus.decisions.values())
    return matching / len(consensus.decisions)


def histories(patch_ids: Iterable[int]) -> dict[int, list[Review]]:
    """Review rows per patch, oldest first, for many patches in one query per 5,000."""
    ids = list(patch_ids)
    found: dict[int, list[Review]] = {i: [] for i in ids}
    for start in range(0, len(ids), 5000):
        for review in Review.objects.filter(patch_id__in=ids[start:start + 5000]).order_by(
                "patch_id", "id").select_related("reviewer"):
            found[review.patch_id].append(review)
    return found
