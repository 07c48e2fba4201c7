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


def test_n_of_m_left_counts_the_queue_with_the_pages_filters(page, live_server, users,
                                                             imported):
    """'N of M left' counted the whole queue whatever the filter (38 of 38 left in a queue
    filtered to 20 candidates; found by a browser walk). The tabs still count whole queues."""
    total = Patch.objects.filter(project=imported).count()
    label = imported.classes.order_by("index").first()
    of_class = Patch.objects.filter(project=imported, current_label=label).count()
    assert 0 < of_class < total
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed"
              f"&current_label={label.pk}")
    shown(page)
    page.wait_for_function("document.getElementById('queue-left').textContent !== ''")
    assert page.text_content("#queue-left") == f"{of_class} of {of_class} left in unreviewed"
    assert page.text_content(".queues a[data-queue=unreviewed] .count").strip() == str(total)


def test_queue_sizes_take_a_queue_and_filters(client, users, imported):
    client.force_login(users["viewer"])
    label = imported.classes.order_by("index").first()
    url = f"/api/projects/{imported.slug}/queues/"
    body = client.get(url, {"queue": "unreviewed", "current_label": label.pk}).json()
    assert body["filtered"] == {"queue": "unreviewed", "size": Patch.objects.filter(
        project=imported, current_label=label).count()}
    assert "filtered" not in client.get(url).json()  # no filter: the sizes say it all
    assert client.get(url, {"queue": "nope"}).status_code == 400
    assert client.get(url, {"queue": "unreviewed", "slide": "abc"}).status_code == 400
