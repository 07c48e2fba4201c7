"""Record review decisions: the one write path for labels (pages, API and grid mode use it).

Every call appends review rows, then re-derives the patch's label and status from the whole
history (:mod:`annotations.consensus`) under a row lock, bumps its version and frees the
reviewer's lease. A decision made on an older version than the patch's is refused with
:class:`StaleReview`, which says what changed: nothing is ever overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotations.consensus import SETTLED, decisions_in_force, derive, histories
from annotations.models import (
    LabelClass,
    Patch,
    PatchStatus,
    Project,
    ProjectSettingChange,
    Review,
    ReviewAction,
    ReviewSource,
)
from annotations.models.projects import percent
from annotations.permissions import Act, require, role_allows
from annotations.prepared import columns, first_instances
from annotations.queues import end_lease, live_lease_counts
from annotations.signals import review_state_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from annotations.permissions import AnyUser

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
    source: str = ReviewSource.SINGLE  # the batch endpoint (grid mode) says "batch"


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


def _latest_visible(patch: Patch, user: User, role: str | None) -> Review | None:
    """The patch's latest decision if ``user`` may read it, for the 409's message: an open
    double read stays blind (:func:`~annotations.permissions.visible_reviews`' rule), so a
    reviewer who sends an old version learns only that the patch changed, not how."""
    latest = (Review.objects.filter(patch=patch).select_related("reviewer", "to_label")
              .order_by("-id").first())
    if latest is None or role_allows(role, Act.ADJUDICATE) or latest.reviewer_id == user.pk \
            or patch.status in SETTLED:
        return latest
    return None


def submit(project: Project, user: User, patch_id: int, decision: Decision) -> Patch:
    """Append ``decision`` to patch ``patch_id``'s history and re-derive its state."""
    role = project.role_of(user)
    _check(project, user, role, decision)
    with transaction.atomic():
        patch = _lock(project, patch_id)
        if patch is None:
            raise ValidationError(f"no patch {patch_id} in project {project.slug}")
        if decision.patch_version != patch.version:
            raise StaleReview(patch, _latest_visible(patch, user, role))
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
        if (action in (ReviewAction.CONFIRM, ReviewAction.CORRECT)
                and patch.status == PatchStatus.DISPUTED and role_allows(role, Act.ADJUDICATE)):
            # An admin's label on a disputed patch settles it (the review page's keys, as
            # on any queue): confirm keeps the label shown, correct sets the one chosen.
            action = ReviewAction.ADJUDICATE
            label = label or patch.current_label
        if (action in (ReviewAction.CONFIRM, ReviewAction.ADJUDICATE) and label is None
                and patch.current_label_id is None):
            # An unlabelled patch (whole-slide import, candidates) has nothing to agree to.
            raise ValidationError(f"patch {patch.image_name} has no label to confirm: "
                                  "choose its class")
        # Every review row comes with a new version (below), so a patch still at version 1
        # has none: its first decision, the usual case, needs no read of its history.
        history = (list(Review.objects.filter(patch=patch).order_by("id"))
                   if patch.version > 1 else [])
        if action == ReviewAction.UNDO and not _has_decision_to_undo(history, user):
            raise ValidationError("nothing of yours to undo on this patch")
        history.append(Review.objects.create(
            patch=patch, reviewer=user, action=action,
            from_label_id=patch.current_label_id,
            to_label_id=(label.pk if label else
                         patch.current_label_id if action == ReviewAction.CONFIRM else None),
            reason=decision.reason, comment=decision.comment, patch_version=patch.version,
            time_spent_ms=decision.time_spent_ms, model_version=decision.model_version,
            shown_probabilities=decision.shown_probabilities, source=decision.source,
        ))
        # A decision ends the reviewer's lease; the patch row's count of leases drops in the
        # same UPDATE that records the new state (the row is locked above).
        released = end_lease(patch, user) if action != ReviewAction.COMMENT else 0
        _rederive(patch, project, history, released)
    return patch


def _lock(project: Project, patch_id: int) -> Patch | None:
    """Patch ``patch_id`` of ``project``, its row locked until the transaction ends (by a
    statement compiled once: every decision runs it, see :mod:`annotations.prepared`)."""
    def build(project: int, patch: int) -> QuerySet[Patch, tuple[Any, ...]]:
        return (Patch.objects.select_for_update(of=("self",))
                .filter(project_id=project, pk=patch).values_list(*columns(Patch)))

    found = first_instances("lock a patch to decide", build, (Patch,), project=project.pk,
                            patch=patch_id)
    return found[0] if found else None


def _has_decision_to_undo(history: list[Review], user: User) -> bool:
    decided, adjudication = decisions_in_force(history)
    return user.pk in decided or (adjudication is not None and adjudication.reviewer_id == user.pk)


def _rederive(patch: Patch, project: Project, history: list[Review], released: int = 0,
              ) -> None:
    """Store the state ``history`` amounts to on the (locked) ``patch`` in one UPDATE, which
    also takes ``released`` ended leases off the row's count of leases held."""
    state = derive(history, patch.original_label_id, project.reviews_required)
    was_unreviewed = patch.status == PatchStatus.UNREVIEWED
    patch.status, patch.current_label_id = state.status, state.label_id
    patch.decisions = len(state.decisions)
    patch.version += 1
    changes: dict[str, object] = {"status": patch.status, "current_label_id": state.label_id,
                                  "decisions": patch.decisions, "version": patch.version}
    if released:  # recounted from the lease rows, in this same UPDATE
        changes.update(live_lease_counts(timezone.now()))
    Patch.objects.filter(pk=patch.pk).update(**changes)
    if was_unreviewed != (state.status == PatchStatus.UNREVIEWED):  # for the queues' rows
        review_state_changed.send(sender=Patch, patch_id=patch.pk, project_id=patch.project_id,
                                  unreviewed=state.status == PatchStatus.UNREVIEWED)



@dataclass(frozen=True)
class ReviewSettings:
    """A project's review settings as its settings page edits them."""

    reviews_required: int
    audit_fraction: float
    lease_seconds: int

    @classmethod
    def of(cls, project: Project) -> ReviewSettings:
        return cls(project.reviews_required, project.audit_fraction, project.lease_seconds)

    def shown(self) -> dict[str, str]:
        """Each setting as people read it (the audit rows keep these strings)."""
        return {"reviews_required": str(self.reviews_required),
                "audit_fraction": percent(self.audit_fraction),  # as Project.audit_percent
                "lease_seconds": f"{self.lease_seconds} s"}


def update_settings(project: Project, user: AnyUser, new: ReviewSettings,
                    ) -> list[ProjectSettingChange]:
    """Save ``new`` (admins only), one audit row per changed setting; a changed number of
    reads re-derives the patches still open (waiting for reads, or disputed) under the new
    rule, so none is left waiting for a read the queues will no longer hand out."""
    editor = require(user, project, Act.MANAGE_SETTINGS)
    errors = []
    if not 1 <= new.reviews_required <= 3:
        errors.append("Reads required must be between 1 and 3.")
    if not 0.0 <= new.audit_fraction <= 1.0:
        errors.append("The audit sample must be between 0 and 100%.")
    if not 30 <= new.lease_seconds <= 86400:
        errors.append("The lease time must be between 30 and 86400 seconds.")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        locked = Project.objects.select_for_update().get(pk=project.pk)
        old = ReviewSettings.of(locked)
        before, after = old.shown(), new.shown()
        changes = [ProjectSettingChange(project=locked, changed_by=editor, field=field,
                                        old_value=before[field], new_value=after[field])
                   for field in before if before[field] != after[field]]
        if not changes:
            return []
        for obj in (locked, project):
            obj.reviews_required = new.reviews_required
            obj.audit_fraction = new.audit_fraction
            obj.lease_seconds = new.lease_seconds
        locked.save(update_fields=["reviews_required", "audit_fraction", "lease_seconds"])
        rows = ProjectSettingChange.objects.bulk_create(changes)
        if old.reviews_required != new.reviews_required:
            _rederive_open(locked)
    return rows


def _rederive_open(project: Project) -> None:
    """Re-derive every patch that is not settled and has reads, under the project's rule."""
    open_ids = list(Patch.objects.filter(project=project).filter(
        Q(status=PatchStatus.DISPUTED) | Q(status=PatchStatus.UNREVIEWED, decisions__gt=0))
        .order_by("id").values_list("id", flat=True))
    for start in range(0, len(open_ids), 1000):
        chunk = open_ids[start:start + 1000]
        patches = list(Patch.objects.select_for_update(of=("self",))
                       .filter(pk__in=chunk).order_by("id"))
        found = histories(chunk)
        for patch in patches:
            state = derive(found[patch.pk], patch.original_label_id, project.reviews_required)
            if (state.status, state.label_id) != (patch.status, patch.current_label_id):
                _rederive(patch, project, found[patch.pk])  # a new version only if changed
