"""Review queues: which patches to show next, in what order, leased to whom.

Each queue is a filter and an ORDER BY evaluated in SQL over indexed columns (the model's
queues join the active version's narrow score rows, see
:func:`inference.queries.scored_queue`). "Next item"
takes leases with ``SELECT ... FOR UPDATE SKIP LOCKED`` so concurrent reviewers never pick
the same patch slot, and a double-read patch goes to as many different reviewers as the
project requires, never twice to one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import transaction
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    F,
    IntegerField,
    Max,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest, Mod
from django.utils import timezone

from annotations.consensus import DECISIONS
from annotations.models import Lease, Patch, PatchStatus, Project, Review, ReviewAction
from annotations.permissions import Act, can
from annotations.prepared import compile_once
from inference.queries import active_version, candidate_queue, scored_queue, with_scores

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from inference.models import ModelVersion

QUEUES = ("disagreement", "uncertain", "unreviewed", "audit", "disputed", "candidates",
          "more_reads")
MODEL_QUEUES = ("disagreement", "uncertain", "more_reads")
_HASH_MULTIPLIER = 2654435761  # Knuth's multiplicative hash, so the audit sample is in SQL
_HASH_RANGE = 2**32
_AUDIT_SEED = 7919  # per project: a patch id's key differs from project to project


class QueueError(ValueError):
    """Unknown queue, or one that needs a model the project does not have yet."""


@dataclass(frozen=True)
class QueueFilters:
    current_label: int | None = None
    predicted_label: int | None = None
    slide: int | None = None
    split: str | None = None
    proposed_label: int | None = None  # candidates: the class they were proposed as


def audit_key(project: Project) -> Mod:
    """A per-project pseudo-random key in [0, 2^32) for every patch (stable, seeded).

    A BigIntegerField: compared with a bound past 2^31 (an audit fraction of 50% or more),
    Django treats an IntegerField lookup as out of range and matches every row."""
    return Mod((F("id") + project.pk * _AUDIT_SEED) * _HASH_MULTIPLIER, _HASH_RANGE,
               output_field=BigIntegerField())


def in_audit_sample(project: Project) -> Q:
    return Q(audit_key__lt=int(project.audit_fraction * _HASH_RANGE))


def patch_in_audit_sample(patch_id: int, project: Project) -> bool:
    """:func:`in_audit_sample` for one patch id, in Python."""
    key = (patch_id + project.pk * _AUDIT_SEED) * _HASH_MULTIPLIER % _HASH_RANGE
    return key < int(project.audit_fraction * _HASH_RANGE)


def queue_queryset(project: Project, name: str, filters: QueueFilters = QueueFilters(),
                   ) -> QuerySet[Patch]:
    """Patches of queue ``name`` in review order (before per-reviewer eligibility)."""
    if name not in QUEUES:
        raise QueueError(f"unknown queue {name!r}; queues: {', '.join(QUEUES)}")
    needs_model = name in MODEL_QUEUES or filters.predicted_label
    version = active_version(project) if needs_model else None
    if name in MODEL_QUEUES and version is None:
        raise QueueError(f"the {name} queue needs a model; train or register one first")
    if name == "more_reads" and version is not None and not has_read_scores(version):
        raise QueueError("the more_reads queue needs two reviewers who have read the same "
                         "patches, then a model trained since (ActiveLab scores come with it)")
    patches = Patch.objects.filter(project=project)
    if filters.current_label:
        patches = patches.filter(current_label_id=filters.current_label)
    if filters.slide:
        patches = patches.filter(slide_id=filters.slide)
    if filters.split is not None:
        patches = patches.filter(split=filters.split)
    if filters.predicted_label and version is not None:
        patches = with_scores(patches, version).filter(
            opinion__predicted_id=filters.predicted_label)
    if name == "disputed":
        return patches.filter(status=PatchStatus.DISPUTED).order_by("id")
    patches = patches.filter(status=PatchStatus.UNREVIEWED)
    if name == "candidates":  # unlabelled patches proposed by similarity to seeds
        return candidate_queue(patches, filters.proposed_label)
    if name == "audit":
        return (patches.annotate(audit_key=audit_key(project)).filter(in_audit_sample(project))
                .order_by("audit_key", "id"))
    if version is None and name == "unreviewed":
        version = active_version(project)
    if version is None:  # unreviewed without a model: in import order
        return patches.order_by("id")
    # The model's queues walk a partial index of the active version's queue scores;
    # ``status`` is still tested on the patch row, which a concurrent decision re-checks.
    return scored_queue(patches, version, name)


def has_read_scores(version: ModelVersion) -> bool:
    """Whether ``version`` came with ActiveLab scores (two reviewers had read the same
    patches when it was trained), so that its ``more_reads`` queue can run."""
    return bool((version.metrics or {}).get("crowdlab"))


def queue_runs(name: str, version: ModelVersion | None) -> bool:
    """Whether queue ``name`` can run with the active ``version`` (None: no model)."""
    if name not in MODEL_QUEUES:
        return True
    return version is not None and (name != "more_reads" or has_read_scores(version))


def queue_sizes(project: Project) -> dict[str, int | None]:
    """Items left per queue (None: the queue cannot run yet, see :func:`queue_runs`)."""
    version = active_version(project)
    return {name: (queue_queryset(project, name).count() if queue_runs(name, version) else None)
            for name in QUEUES}


def filtered_size(project: Project, name: str, filters: QueueFilters) -> int | None:
    """Items left in queue ``name`` that match ``filters`` (what a reviewer with those filters
    works through), None as in :func:`queue_sizes`."""
    if not queue_runs(name, active_version(project)):
        return None
    return queue_queryset(project, name, filters).count()


@dataclass(frozen=True)
class Elsewhere:
    """Why a queue has nothing for a reviewer although items are left in it."""

    held_by_others: int  # items leased to other reviewers now
    free_at: datetime | None  # when the first of those leases runs out
    skipped_by_you: int  # items you skipped, kept from you for a while


def elsewhere(project: Project, user: User, name: str,
              filters: QueueFilters = QueueFilters()) -> Elsewhere:
    """The items of queue ``name`` that are not for ``user`` right now, and until when."""
    now = timezone.now()
    items = queue_queryset(project, name, filters).values("id")
    others = Lease.objects.filter(patch__in=items, expires_at__gt=now, skipped=False).exclude(
        reviewer_id=user.pk)
    counts = others.aggregate(n=Count("patch", distinct=True), first=Min("expires_at"))
    skipped = Lease.objects.filter(patch__in=items, reviewer_id=user.pk, skipped=True,
                                   expires_at__gt=now).count()
    return Elsewhere(counts["n"], counts["first"], skipped)


def _live_leases(now: datetime) -> Case:
    """Leases held on a patch, from its own row (0 once the latest of them expired)."""
    return Case(When(lease_expires__gt=now, then=F("leases_held")), default=Value(0),
                output_field=IntegerField())


def _eligible(patches: QuerySet[Patch], project: Project, user_id: int, name: str,
              now: datetime) -> QuerySet[Patch]:
    """Patches this user may be given now: not held or skipped by them, and with a free slot.

    A read (every queue but ``disputed``) must not have been decided by them since the last
    reopen, and has as many slots as the project requires reads. A dispute has one slot, for
    one adjudicating admin at a time, who may be one of its readers.

    The free-slot test reads only the patch row's own columns, so when a concurrent
    reviewer's lease commits first, PostgreSQL re-checks it on the updated row and skips it.
    """
    mine = Lease.objects.filter(patch=OuterRef("pk"), reviewer_id=user_id, expires_at__gt=now)
    patches = patches.filter(~Exists(mine)).annotate(held=_live_leases(now))
    if name == "disputed":
        return patches.filter(held__lt=1)
    last_reopen = (Review.objects.filter(patch=OuterRef(OuterRef("pk")),
                                         action=ReviewAction.REOPEN)
                   .order_by("-id").values("id")[:1])
    decided = Review.objects.filter(patch=OuterRef("pk"), reviewer_id=user_id,
                                    action__in=DECISIONS,
                                    id__gt=Coalesce(Subquery(last_reopen), Value(0)))
    return patches.filter(~Exists(decided),
                          decisions__lt=project.reviews_required - F("held"))


def _held(project: Project, user: User, name: str, now: datetime) -> list[int]:
    """Patches ``user`` holds live leases on from queue ``name``, by id (one statement per
    project and queue, compiled once: :mod:`annotations.prepared`)."""
    def build(user: int, now: datetime) -> QuerySet[Lease, tuple[int]]:
        return Lease.objects.filter(patch__project=project, reviewer_id=user, queue=name,
                                    skipped=False, expires_at__gt=now).values_list("patch_id")

    statement = compile_once(("held leases", project.pk, name), build)
    rows = build(user.pk, now) if statement is None else statement.rows(user=user.pk, now=now)
    return sorted(row[0] for row in rows)


def _take(project: Project, user: User, name: str, filters: QueueFilters, now: datetime,
          wanted: int) -> list[int]:
    """Lock up to ``wanted`` patches of queue ``name`` that ``user`` may be given now, in
    queue order, skipping rows other reviewers are locking.

    The statement is compiled once per shape (:mod:`annotations.prepared`): its SQL depends
    on the project, its review settings, the active version, the queue, the filters and the
    count, which make the key; the reviewer and the clock are its changing values."""
    version = active_version(project)
    key = ("lease_next", project.pk, project.reviews_required, project.audit_fraction, name,
           filters, version.pk if version else None, wanted)

    def build(user: int, now: datetime) -> QuerySet[Patch, int]:
        return (_eligible(queue_queryset(project, name, filters), project, user, name, now)
                .select_for_update(skip_locked=True, of=("self",))
                .values_list("id", flat=True)[:wanted])

    statement = compile_once(key, build)
    if statement is None:
        return list(build(user.pk, now))
    return [row[0] for row in statement.rows(user=user.pk, now=now)]


def live_lease_counts(now: datetime) -> dict[str, Coalesce | Subquery]:
    """The patch row's count of live leases and the latest of their expiries, counted from
    the lease rows themselves, for an UPDATE of the (locked) patch rows. A recount, never
    +1 or -1: arithmetic on the count drifted once a lease expired (a late decision on an
    expired lease, or a lease renewed from an expired row, gave one read two holders)."""
    live = Lease.objects.filter(patch=OuterRef("pk"), skipped=False, expires_at__gt=now)
    return {
        "leases_held": Coalesce(Subquery(live.values("patch").annotate(n=Count("id"))
                                         .values("n")[:1]), Value(0)),
        "lease_expires": Subquery(live.values("patch").annotate(last=Max("expires_at"))
                                  .values("last")[:1]),
    }


def recount(patch_ids: list[int], now: datetime) -> None:
    """Recount the leases on these patch rows (inside the transaction that locked them)."""
    Patch.objects.filter(pk__in=patch_ids).update(**live_lease_counts(now))


def lease_next(project: Project, user: User, name: str, count: int = 1,
               filters: QueueFilters = QueueFilters()) -> list[Lease]:
    """Up to ``count`` leases for ``user`` from queue ``name``: the ones they already hold
    (renewed) first, then new ones taken in queue order, skipping rows others are taking.

    Held items that no longer match the queue and ``filters`` (the reviewer changed the
    filters, or the item left the queue) are released first, for others to take."""
    if name == "disputed" and not can(user, project, Act.ADJUDICATE):
        raise QueueError("only project admins adjudicate disputed items")
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    with transaction.atomic():
        # Lock order everywhere: patch rows (by id), then leases, as reviewing.submit does;
        # a decision arriving while the page prefetches must not deadlock with it.
        held_patches = _held(project, user, name, now)
        # Most calls (a reviewer who just decided) hold nothing: no statements to build then.
        held = _renew_held(project, user, name, filters, held_patches, count, now,
                           expires) if held_patches else []
        wanted = count - len(held)
        created: list[Lease] = []
        if wanted > 0:
            ids = _take(project, user, name, filters, now, wanted)
            created = Lease.objects.bulk_create(
                [Lease(patch_id=i, reviewer=user, queue=name, expires_at=expires)
                 for i in ids],
                update_conflicts=True, unique_fields=["patch", "reviewer"],
                update_fields=["queue", "expires_at", "skipped", "created_at"])
            recount(ids, now)
    for lease in held:
        lease.expires_at = expires
    return held + created


def _renew_held(project: Project, user: User, name: str, filters: QueueFilters,
                held_patches: list[int], count: int, now: datetime,
                expires: datetime) -> list[Lease]:
    """Renew up to ``count`` of the user's held leases that still match the queue and
    ``filters``, oldest first; release the rest for others."""
    list(Patch.objects.select_for_update(of=("self",)).filter(pk__in=held_patches)
         .order_by("id").values_list("id", flat=True))
    matching = set(queue_queryset(project, name, filters).filter(pk__in=held_patches)
                   .values_list("id", flat=True))
    stale = [pid for pid in held_patches if pid not in matching]
    if stale:
        Lease.objects.filter(patch_id__in=stale, reviewer=user).delete()
        recount(stale, now)
    if not matching:
        return []
    held = list(Lease.objects.filter(patch_id__in=matching, reviewer=user, queue=name,
                                     skipped=False, expires_at__gt=now)
                .order_by("created_at", "id")[:count])
    kept = sorted(lease.patch_id for lease in held)
    Lease.objects.filter(pk__in=[lease.pk for lease in held]).update(expires_at=expires)
    Patch.objects.filter(pk__in=kept).update(
        lease_expires=Greatest(Coalesce(F("lease_expires"), Value(expires)), Value(expires)))
    return held


class LeaseTaken(QueueError):
    """The patch has no free slot for this reviewer: others hold it (or it is decided)."""


def lease_patch(project: Project, user: User, patch_id: int, name: str) -> Lease:
    """Hold one given patch (the one a reviewer just undid, to decide it again): renew the
    lease they hold, or take a free slot: decisions in force plus others' live leases stay
    within the reads required (one slot for a dispute), so one read never has two holders."""
    if name == "disputed" and not can(user, project, Act.ADJUDICATE):
        # as in lease_next: a disputed item carries each reader's decision, and its one
        # slot is an adjudicating admin's
        raise QueueError("only project admins adjudicate disputed items")
    patch = Patch.objects.filter(project=project, pk=patch_id).first()
    if patch is None:
        raise QueueError(f"no patch {patch_id} in project {project.slug}")
    now = timezone.now()
    expires = now + timedelta(seconds=project.lease_seconds)
    with transaction.atomic():
        # Lock order as everywhere: the patch row first, then its leases.
        list(Patch.objects.select_for_update(of=("self",)).filter(pk=patch.pk)
             .values_list("id", flat=True))
        patch.refresh_from_db(fields=["decisions", "status"])
        holds = Lease.objects.filter(patch=patch, reviewer=user, expires_at__gt=now).exists()
        others = (Lease.objects.filter(patch=patch, expires_at__gt=now, skipped=False)
                  .exclude(reviewer=user).order_by("expires_at"))
        slots = 1 if patch.status == PatchStatus.DISPUTED else project.reviews_required
        used = others.count() + (0 if patch.status == PatchStatus.DISPUTED else patch.decisions)
        if not holds and used >= slots:
            taken = others.first()
            raise LeaseTaken(
                f"patch {patch.image_name} is leased to another reviewer until "
                f"{taken.expires_at:%H:%M:%S} UTC" if taken else
                f"patch {patch.image_name} has no read left for you")
        lease, _ = Lease.objects.update_or_create(
            patch=patch, reviewer=user,
            defaults={"queue": name, "expires_at": expires, "skipped": False})
        recount([patch.pk], now)  # a new row, or an expired or skipped one come back to life
    return lease


def skip(project: Project, user: User, patch_id: int) -> None:
    """Hand the item back to the others and keep it from this reviewer for a while."""
    now = timezone.now()
    with transaction.atomic():
        # Lock order as everywhere: the patch row first, then its leases.
        if not list(Patch.objects.select_for_update(of=("self",))
                    .filter(project=project, pk=patch_id).values_list("id", flat=True)):
            return
        if Lease.objects.filter(patch_id=patch_id, reviewer=user, skipped=False).update(
                skipped=True,
                expires_at=now + timedelta(seconds=settings.SPIDER_SKIP_SECONDS)):
            recount([patch_id], now)


def release(patch: Patch, user: User) -> None:
    """The reviewer answered: their lease on ``patch`` (locked by the caller) ends."""
    if end_lease(patch, user):
        recount([patch.pk], timezone.now())


def end_lease(patch: Patch, user: User) -> int:
    """Delete the reviewer's lease on ``patch`` (0 or 1 rows) without touching the patch row:
    :mod:`annotations.reviewing` recounts the row's leases in the UPDATE that records the
    decision on that (locked) row (:func:`live_lease_counts`)."""
    return Lease.objects.filter(patch=patch, reviewer=user, skipped=False).delete()[0]


@dataclass(frozen=True)
class ErrorEstimate:
    """Label error rate in the audit sample's settled items, with a Wilson 95% interval."""

    reviewed: int
    wrong: int
    sample_size: int
    rate: float | None
    low: float | None
    high: float | None


def audit_estimate(project: Project) -> ErrorEstimate:
    sample = (Patch.objects.filter(project=project).annotate(audit_key=audit_key(project))
              .filter(in_audit_sample(project)))
    return error_estimate(dict(sample.values_list("status").annotate(n=Count("id"))
                               .values_list("status", "n")))


def error_estimate(by_status: dict[str, int]) -> ErrorEstimate:
    """The audit sample's error rate from its patches per status: corrected of settled."""
    wrong = by_status.get(PatchStatus.CORRECTED, 0)
    reviewed = wrong + by_status.get(PatchStatus.CONFIRMED, 0)
    size = sum(by_status.values())
    if not reviewed:
        return ErrorEstimate(0, 0, size, None, None, None)
    rate, low, high = wilson_interval(wrong, reviewed)
    return ErrorEstimate(reviewed, wrong, size, rate, low, high)


def wilson_interval(k: int, n: int, z: float = 1.959964) -> tuple[float, float, float]:
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)
