"""Review decisions, consensus, leases and queues on real PostgreSQL."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.utils import timezone

from annotations.actions import set_membership
from annotations.models import Lease, Patch, PatchStatus, Review, Role
from annotations.queues import (
    QueueError,
    audit_estimate,
    lease_next,
    queue_queryset,
    queue_sizes,
    skip,
)
from annotations.reviewing import Decision, ReviewSettings, StaleReview, submit, update_settings


def other_class(patch: Patch) -> int:
    return patch.project.classes.exclude(pk=patch.current_label_id).values_list(
        "id", flat=True).first()


def decide(project, user, patch: Patch, action: str, label: int | None = None,
           **extra) -> Patch:
    patch.refresh_from_db()
    return submit(project, user, patch.pk, Decision(action, patch.version, label, **extra))


def test_single_read_confirm_and_correct_keep_every_change(imported, users):
    a, b = Patch.objects.filter(project=imported).order_by("id")[:2]
    original = a.current_label_id
    decide(imported, users["reviewer"], a, "confirm")
    a.refresh_from_db()
    assert (a.status, a.current_label_id, a.version) == (PatchStatus.CONFIRMED, original, 2)
    new = other_class(b)
    decide(imported, users["reviewer"], b, "correct", new, time_spent_ms=900,
           model_version="m1", shown_probabilities={"Fat": 0.9})
    b.refresh_from_db()
    assert (b.status, b.current_label_id) == (PatchStatus.CORRECTED, new)
    review = Review.objects.get(patch=b)
    assert (review.from_label_id, review.to_label_id, review.time_spent_ms,
            review.model_version, review.patch_version) == (b.original_label_id, new, 900,
                                                            "m1", 1)


def test_stale_version_is_refused_with_what_changed(imported, users):
    patch = Patch.objects.filter(project=imported).first()
    submit(imported, users["admin"], patch.pk, Decision("confirm", 1))
    with pytest.raises(StaleReview) as err:
        submit(imported, users["reviewer"], patch.pk,
               Decision("correct", 1, other_class(patch)))
    assert "admin recorded 'confirm" in str(err.value) and "nothing was overwritten" in str(
        err.value)
    patch.refresh_from_db()
    assert patch.status == PatchStatus.CONFIRMED and Review.objects.filter(patch=patch).count() == 1


def test_undo_restores_and_reopen_returns_to_queue(imported, users):
    patch = Patch.objects.filter(project=imported).first()
    original = patch.current_label_id
    decide(imported, users["reviewer"], patch, "correct", other_class(patch))
    decide(imported, users["reviewer"], patch, "undo")
    patch.refresh_from_db()
    assert (patch.status, patch.current_label_id) == (PatchStatus.UNREVIEWED, original)
    with pytest.raises(ValidationError, match="nothing of yours to undo"):
        decide(imported, users["reviewer"], patch, "undo")
    decide(imported, users["reviewer"], patch, "exclude", reason="out of focus")
    patch.refresh_from_db()
    assert patch.status == PatchStatus.EXCLUDED
    with pytest.raises(PermissionDenied):
        decide(imported, users["reviewer"], patch, "reopen")
    decide(imported, users["admin"], patch, "reopen")
    patch.refresh_from_db()
    assert patch.status == PatchStatus.UNREVIEWED
    assert [r.action for r in Review.objects.filter(patch=patch)] == [
        "correct", "undo", "exclude", "reopen"]  # every change kept


def test_double_read_blind_consensus_dispute_and_adjudication(imported, users):
    imported.reviews_required = 2
    imported.save()
    second = get_user_model().objects.create_user("second", password="pw")
    set_membership(imported, second, Role.REVIEWER)
    agree, differ = Patch.objects.filter(project=imported).order_by("id")[:2]
    decide(imported, users["reviewer"], agree, "confirm")
    agree.refresh_from_db()
    assert agree.status == PatchStatus.UNREVIEWED and agree.decisions == 1  # waits, blind
    decide(imported, second, agree, "confirm")
    agree.refresh_from_db()
    assert agree.status == PatchStatus.CONFIRMED

    new = other_class(differ)
    decide(imported, users["reviewer"], differ, "confirm")
    decide(imported, second, differ, "correct", new)
    differ.refresh_from_db()
    assert (differ.status, differ.current_label_id) == (PatchStatus.DISPUTED,
                                                        differ.original_label_id)
    assert list(queue_queryset(imported, "disputed").values_list("id", flat=True)) == [differ.pk]
    with pytest.raises(PermissionDenied):
        decide(imported, second, differ, "adjudicate", new)
    with pytest.raises(QueueError):
        lease_next(imported, second, "disputed")
    decide(imported, users["admin"], differ, "adjudicate", new)
    differ.refresh_from_db()
    assert (differ.status, differ.current_label_id) == (PatchStatus.CORRECTED, new)


def test_double_read_goes_to_two_different_reviewers(imported, users):
    imported.reviews_required = 2
    imported.save()
    first = lease_next(imported, users["reviewer"], "unreviewed", 3)
    again = lease_next(imported, users["reviewer"], "unreviewed", 3)
    assert [lease.patch_id for lease in again] == [lease.patch_id for lease in first]  # renewed
    other = lease_next(imported, users["admin"], "unreviewed", 3)
    assert [lease.patch_id for lease in other] == [lease.patch_id for lease in first]  # slot 2
    third = get_user_model().objects.create_user("third", password="pw")
    set_membership(imported, third, Role.REVIEWER)
    assert not {lease.patch_id for lease in lease_next(imported, third, "unreviewed", 3)} & {
        lease.patch_id for lease in first}  # both slots taken


def test_viewers_cannot_review(imported, users):
    patch = Patch.objects.filter(project=imported).first()
    with pytest.raises(PermissionDenied):
        decide(imported, users["viewer"], patch, "confirm")


def test_expired_and_skipped_leases(imported, users):
    lease = lease_next(imported, users["reviewer"], "unreviewed", 1)[0]
    past = timezone.now() - timedelta(seconds=1)  # as if the tab was closed 5 minutes ago
    Lease.objects.filter(pk=lease.pk).update(expires_at=past)
    Patch.objects.filter(pk=lease.patch_id).update(lease_expires=past)
    assert lease_next(imported, users["admin"], "unreviewed", 1)[0].patch_id == lease.patch_id
    skip(imported, users["admin"], lease.patch_id)
    assert lease_next(imported, users["admin"], "unreviewed", 1)[0].patch_id != lease.patch_id
    assert lease_next(imported, users["reviewer"], "unreviewed", 1)[0].patch_id == lease.patch_id


def test_queues_work_without_a_model_and_audit_estimate(imported, users):
    sizes = queue_sizes(imported)
    total = Patch.objects.filter(project=imported).count()
    assert sizes["unreviewed"] == total and sizes["disagreement"] is None
    assert 0 < sizes["audit"] < total
    with pytest.raises(QueueError, match="needs a model"):
        lease_next(imported, users["reviewer"], "disagreement")
    audit = queue_queryset(imported, "audit")
    assert list(audit.values_list("id", flat=True)) == list(
        queue_queryset(imported, "audit").values_list("id", flat=True))  # stable sample
    first, second = list(audit[:2])
    decide(imported, users["reviewer"], first, "confirm")
    decide(imported, users["reviewer"], second, "correct", other_class(second))
    estimate = audit_estimate(imported)
    assert (estimate.reviewed, estimate.wrong, estimate.rate) == (2, 1, 0.5)
    assert 0 < estimate.low < 0.5 < estimate.high < 1


@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_the_audit_queue_is_the_sample_at_any_fraction(imported, users, fraction):
    """Past 50% the sample's bound exceeds 2^31: it once matched every patch."""
    update_settings(imported, users["admin"], ReviewSettings(1, fraction, 600))
    ids = set(Patch.objects.filter(project=imported).values_list("id", flat=True))
    expected = {pk for pk in ids if (pk + imported.pk * 7919) * 2654435761 % 2**32
                < int(fraction * 2**32)}
    assert set(queue_queryset(imported, "audit").values_list("id", flat=True)) == expected
    assert 0 < len(expected) < len(ids) and queue_sizes(imported)["audit"] == len(expected)


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_reviewers_never_get_the_same_item(imported, users):
    User = get_user_model()
    reviewers = []
    for i in range(20):
        user = User.objects.create_user(f"r{i}", password="pw")
        set_membership(imported, user, Role.REVIEWER)
        reviewers.append(user)
    barrier = threading.Barrier(len(reviewers))
    got: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def take(user) -> None:
        try:
            barrier.wait()
            got[user.username] = [lease.patch_id
                                  for lease in lease_next(imported, user, "unreviewed", 3)]
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            connection.close()  # each thread had its own real connection

    threads = [threading.Thread(target=take, args=(u,)) for u in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    taken = [p for ids in got.values() for p in ids]
    assert len(taken) == 60 and len(set(taken)) == 60  # nobody shares an item
