"""Issue 10: the review page keeps its counts live and says why a queue is empty for you,
pressed and read in Debian's Chromium."""

from __future__ import annotations

import pytest
from django.test import Client

from annotations.models import Patch
from tests.test_browser import ARTIFACTS, log_in
from tests.test_review_browser import next_shown, shown, wait_reviews

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_counts_follow_each_decision(page, live_server, users, imported):
    total = Patch.objects.filter(project=imported).count()
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    first = shown(page)
    page.wait_for_function("document.getElementById('queue-left').textContent !== ''")
    assert page.text_content("#queue-left") == f"{total} of {total} left in unreviewed"
    page.keyboard.press("Enter")
    next_shown(page, first)
    wait_reviews(1)
    page.wait_for_function(
        f"document.getElementById('queue-left').textContent.startsWith('{total - 1} of')")
    assert page.text_content("#queue-left") == f"{total - 1} of {total} left in unreviewed"
    tab = page.text_content(".queues a[data-queue=unreviewed] .count").strip()
    assert tab == str(total - 1)

    page.keyboard.press("Backspace")  # undo: the patch is back, and so is the count, at
    page.wait_for_function(  # once (the page's own refresh comes every 15 s)
        f"document.getElementById('queue-left').textContent.startsWith('{total} of')",
        timeout=5000)
    assert page.text_content(".queues a[data-queue=unreviewed] .count").strip() == str(total)


def test_an_empty_queue_says_who_holds_the_items_and_clears_the_panel(
        page, live_server, users, imported):
    total = Patch.objects.filter(project=imported).count()
    other = Client()
    other.force_login(users["admin"])  # another reader takes every item of the queue
    taken = other.post(f"/api/projects/{imported.slug}/queues/unreviewed/next/",
                       {"count": total}, content_type="application/json").json()["items"]
    assert len(taken) == total
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    page.wait_for_selector("#banner:not([hidden])")
    banner = page.text_content("#banner")
    assert f"{total} items are leased to other reviewers (the first comes free at" in banner
    assert page.text_content("#patch-meta") == ""
    assert page.locator("#class-buttons button.current").count() == 0
    page.screenshot(path=str(ARTIFACTS / "review_empty_why.png"))
