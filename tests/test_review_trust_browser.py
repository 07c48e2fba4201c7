"""Issue 10, server rules seen from the review page in Debian's Chromium: an admin reaches and
settles a dispute with the page's keys; a new class filter is not served stale leases."""

from __future__ import annotations

import time

import pytest

from annotations.models import Lease, Patch, PatchStatus
from annotations.reviewing import Decision, submit
from tests.test_browser import ARTIFACTS, log_in
from tests.test_review_browser import next_shown, shown, wait_reviews

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def decide(project, user, patch, action, label=None):
    patch.refresh_from_db()
    submit(project, user, patch.pk, Decision(action=action, patch_version=patch.version,
                                             label_id=label))


def test_an_admin_who_read_a_patch_adjudicates_it_from_the_disputed_queue(
        page, live_server, users, imported):
    imported.reviews_required = 2
    imported.save()
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    other = imported.classes.exclude(pk=patch.current_label_id).order_by("index").first()
    decide(imported, users["reviewer"], patch, "confirm")
    decide(imported, users["admin"], patch, "correct", other.pk)
    assert Patch.objects.get(pk=patch.pk).status == PatchStatus.DISPUTED

    submit(imported, users["reviewer"], patch.pk, Decision(
        action="comment", patch_version=Patch.objects.get(pk=patch.pk).version,
        comment="nuclei look benign"))  # a comment is no decision: not listed as a read

    log_in(page, live_server, "admin")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=disputed")
    assert shown(page) == patch.pk  # not "This queue is empty for you"
    # What each reader decided is on screen for the admin who settles it (it showed only
    # the label, as for any read: found by a browser walk).
    assert page.is_visible("#reads-box")
    reads = page.inner_text("#reads").splitlines()
    assert reads == [f"reviewer: {patch.current_label.name}", f"admin: {other.name}"], reads
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review_disputed_reads.png"))
    page.keyboard.press("Enter")  # the label shown (the original) is right
    wait_reviews(4, patch=patch)
    settled = Patch.objects.get(pk=patch.pk)
    assert (settled.status, settled.current_label_id) == (PatchStatus.CONFIRMED,
                                                          patch.original_label_id)
    page.wait_for_function("document.getElementById('banner').innerText.includes('empty')",
                           timeout=15000)


def test_a_new_class_filter_shows_only_that_class_first(page, live_server, users, imported):
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    shown(page)
    deadline = time.monotonic() + 15
    while (Lease.objects.filter(reviewer=users["reviewer"]).count() < 5
           and time.monotonic() < deadline):
        time.sleep(0.1)  # the page leases the one shown and four ahead
    held = set(Lease.objects.filter(reviewer=users["reviewer"]).values_list(
        "patch__current_label_id", flat=True))
    label = next(c for c in imported.classes.order_by("index")
                 if c.pk not in held and Patch.objects.filter(project=imported,
                                                              current_label=c).count() >= 3)
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed"
              f"&current_label={label.pk}")
    current = shown(page)
    n = min(5, Patch.objects.filter(project=imported, current_label=label).count())
    for i in range(n):
        assert Patch.objects.get(pk=current).current_label_id == label.pk, f"item {i + 1}"
        page.keyboard.press("Enter")
        if i < n - 1:
            current = next_shown(page, current)
    wait_reviews(n, reviewer=users["reviewer"])
    assert not Lease.objects.filter(reviewer=users["reviewer"]).exclude(
        patch__current_label=label).exists()  # the others went back to the queue
