"""Record review decisions: the one write path for labels (pages, API and grid mode use it).

Every call appends review rows, then re-derives the patch's label and status from the whole
history (:mod:`annotations.consensus`) under a row lock, bumps its version and frees the
reviewer's lease. A decision made on an older version than the patch's is refused with
:class:`StaleReview`, which says what changed: nothing is ever overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from annotations.consensus import decisions_in_force, derive
from annotations.models import (
    LabelClass,
    Patch,
    PatchStatus,
    Project,
    Review,
    ReviewAction,
)
from annotations.permissions import Act, role_allows
from annotations.queues import release
from annotations.signals import review_state_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User

EXCLUDE_REASONS = ("artefact", "out of focus", "no tissue", "other")


class StaleReview(Exception):
    """The patch changed since the reviewer loaded it (HTTP 409)."""

    def __init__(self, patch: Patch, latest: Review | None) -> None:
        self.patch, self.latest = patch, latest
        if latest is None:
            change = "it was changed"
        else:
            who = latest.reviewer.get_username()
            label = f" to {latest.to_label.name}" if latest.to_label is not None else ""
            change = f"{who} recorded '{latest.action}{label}' at {latest.created_at:%H:%M:%S}"
        super().__init__(f"Patch {patch.image_name} changed since you loaded it: {change}. "
                         f"It is now version {patch.version} ({patch.status}); nothing was "
                         "overwritten.")


@dataclass(frozen=True)
class Decision:
    """One reviewer action on one patch, as submitted."""

    action: str
    patch_version: int
    label_id: int | None = None
    reason: str = ""
    comment: str = ""
    time_spent_ms: int | None = None
    model_version: str = ""
    shown_probabilities: dict[str, object] | list[object] | None = None  # JSON, as shown


def _check(project: Project, user: User, role: str | None, decision: Decision) -> None:
    if not role_allows(role, Act.REVIEW):
        raise PermissionDenied("Reviewing needs the reviewer role")
    action = decision.action
    if (action in (ReviewAction.ADJUDICATE, ReviewAction.REOPEN)
            and not role_allows(role, Act.ADJUDICATE)):
        raise PermissionDenied(f"Only project admins may {action}")
    if action not in ReviewAction.values:
        raise ValidationError(f"unknown action {action!r}")
    needs_label = action in (ReviewAction.CORRECT, ReviewAction.ADJUDICATE)
    if needs_label and decision.label_id is None:
        raise ValidationError(f"'{action}' needs the class to set")
    if action == ReviewAction.EXCLUDE and decision.reason not in EXCLUDE_REASONS:
        raise ValidationError(f"exclude needs a reason: one of {', '.join(EXCLUDE_REASONS)}")
    if action == ReviewAction.COMMENT and not decision.comment.strip():
        raise ValidationError("a comment needs text")


def submit(project: Project, user: User, patch_id: int, decision: Decision) -> Patch:
    """Append ``decision`` to patch ``patch_id``'s history and re-derive its state."""
    role = project.role_of(user)
    _check(project, user, role, decision)
    with transaction.atomic():
        patch = (Patch.objects.select_for_update(of=("self",)).select_related("current_label")
                 .filter(project=project, pk=patch_id).first())
        if patch is None:
            raise ValidationError(f"no patch {patch_id} in project {project.slug}")
        if decision.patch_version != patch.version:
            latest = (Review.objects.filter(patch=patch).select_related("reviewer", "to_label")
                      .order_by("-id").first())
            raise StaleReview(patch, latest)
        label: LabelClass | None = None
        if decision.label_id is not None:
            label = LabelClass.objects.filter(project=project, pk=decision.label_id).first()
            if label is None:
                raise ValidationError(f"no class {decision.label_id} in project {project.slug}")
        action = decision.action
        if (action == ReviewAction.CORRECT and label is not None
                and label.pk == patch.current_label_id
                and patch.status == PatchStatus.UNREVIEWED):
            action = ReviewAction.CONFIRM  # "correcting" to the shown label is agreeing
        history = list(Review.objects.filter(patch=patch).order_by("id"))
        if action == ReviewAction.UNDO and not _has_decision_to_undo(history, user):
            raise ValidationError("nothing of yours to undo on this patch")
        history.append(Review.objects.create(
            patch=patch, reviewer=user, action=action,
            from_label_id=patch.current_label_id,
            to_label_id=(label.pk if label else
                         patch.current_label_id if action == ReviewAction.CONFIRM else None),
            reason=decision.reason, comment=decision.comment, patch_version=patch.version,
            time_spent_ms=decision.time_spent_ms, model_version=decision.model_version,
            shown_probabilities=decision.shown_probabilities,
        ))
        _rederive(patch, project, history)
        if action != ReviewAction.COMMENT:
            release(patch, user)
    return patch


def _has_decision_to_undo(history: list[Review], user: User) -> bool:
    decided, adjudication = decisions_in_force(history)
    return user.pk in decided or (adjudication is not None and adjudication.reviewer_id == user.pk)


def _rederive(patch: Patch, project: Project, history: list[Review]) -> None:
    state = derive(history, patch.original_label_id, project.reviews_required)
    was_unreviewed = patch.status == PatchStatus.UNREVIEWED
    patch.status, patch.current_label_id = state.status, state.label_id
    patch.decisions = len(state.decisions)
    patch.version += 1
    patch.save(update_fields=["status", "current_label", "decisions", "version"])
    if was_unreviewed != (state.status == PatchStatus.UNREVIEWED):  # for the queues' rows
        review_state_changed.send(sender=Patch, patch_id=patch.pk,
                                  unreviewed=state.status == PatchStatus.UNREVIEWED)

