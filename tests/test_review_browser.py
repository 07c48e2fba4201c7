"""The review page and grid mode in Debian's Chromium: keyboard review, undo, conflict, grid."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from annotations.models import Patch, PatchStatus, Review
from tests.test_browser import ARTIFACTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shown(page) -> int:
    page.wait_for_function("document.body.dataset.patch", timeout=15000)
    return int(page.evaluate("document.body.dataset.patch"))


def next_shown(page, previous: int) -> int:
    page.wait_for_function(
        f"document.body.dataset.patch && document.body.dataset.patch !== '{previous}'",
        timeout=15000)
    return int(page.evaluate("document.body.dataset.patch"))


def wait_js(page, expression: str, seconds: float = 15) -> None:
    """Poll ``expression`` in the page (page.wait_for_function compiles its predicate with
    eval, which the site's Content-Security-Policy refuses on some pages)."""
    import time

    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.05)


def grid_on_screen(page) -> list[int]:
    """The grid mode patches wholly inside the window now, in page order."""
    return page.evaluate("""() => [...document.querySelectorAll('#grid-items figure')]
        .filter((f) => { const r = f.getBoundingClientRect();
                         return r.top >= 0 && r.bottom <= innerHeight; })
        .map((f) => Number(f.dataset.patch))""")


def wait_reviews(count: int, **filters) -> None:
    import time

    deadline = time.monotonic() + 15
    while Review.objects.filter(**filters).count() < count and time.monotonic() < deadline:
        time.sleep(0.1)


def test_review_ten_with_the_keyboard_then_undo(page, live_server, users, imported):
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    classes = {c.hotkey: c for c in imported.classes.all()}
    decided: dict[int, str] = {}
    current = shown(page)
    for i in range(10):
        patch = Patch.objects.get(pk=current)
        if i % 3 == 1:  # correct to another class by its key
            key = next(k for k, c in classes.items() if c.pk != patch.current_label_id)
            page.keyboard.press(key)
            decided[current] = classes[key].name
        else:
            page.keyboard.press("Enter")
            decided[current] = patch.current_label.name
        current = next_shown(page, current)
    wait_reviews(10, reviewer=users["reviewer"])
    for patch_id, label in decided.items():
        patch = Patch.objects.get(pk=patch_id)
        assert patch.current_label.name == label
        assert patch.status in (PatchStatus.CONFIRMED, PatchStatus.CORRECTED)
    rows = Review.objects.filter(reviewer=users["reviewer"])
    assert rows.count() == 10 and all(r.time_spent_ms is not None for r in rows)

    last = list(decided)[-1]
    page.keyboard.press("Backspace")
    back = next_shown(page, current)
    assert back == last
    wait_reviews(11, reviewer=users["reviewer"])
    restored = Patch.objects.get(pk=last)
    assert restored.status == PatchStatus.UNREVIEWED
    assert restored.current_label_id == restored.original_label_id
    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("Escape")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review_page.png"))


def test_conflict_from_a_second_session_is_explained(browser, live_server, users, imported):
    imported.reviews_required = 1
    imported.save()
    second = get_user_model().objects.create_user("second", password="pw")
    from annotations.actions import set_membership
    from annotations.models import Role

    set_membership(imported, second, Role.ADMIN)
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    mine, theirs = (c.new_page() for c in contexts)
    try:
        log_in(mine, live_server, "reviewer")
        mine.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
        target = shown(mine)
        # Someone else settles the same patch meanwhile (an admin through the API).
        log_in(theirs, live_server, "second")
        patch = Patch.objects.get(pk=target)
        theirs.goto(f"{live_server.url}/p/{imported.slug}/")
        response = theirs.request.post(
            f"{live_server.url}/api/projects/{imported.slug}/patches/{target}/reviews/",
            data={"action": "unsure", "patch_version": patch.version},
            headers={"X-CSRFToken": next(c["value"] for c in contexts[1].cookies()
                                         if c["name"] == "csrftoken")})
        assert response.status == 201
        mine.keyboard.press("Enter")
        mine.wait_for_selector("#banner:not([hidden])", timeout=15000)
        text = mine.inner_text("#banner")
        assert "changed since you loaded it" in text and "second recorded 'unsure'" in text
        assert Patch.objects.get(pk=target).status == PatchStatus.UNSURE  # nothing overwritten
        assert not Review.objects.filter(patch_id=target, reviewer=users["reviewer"]).exists()
    finally:
        for c in contexts:
            c.close()


def test_grid_relabel_the_odd_ones_and_agree_to_the_rest(page, live_server, users, imported):
    log_in(page, live_server, "reviewer")
    label = imported.classes.order_by("index").first()
    page.goto(f"{live_server.url}/p/{imported.slug}/review/grid/?queue=unreviewed"
              f"&current_label={label.pk}")
    page.wait_for_selector("#grid-items figure", timeout=15000)
    figures = page.locator("#grid-items figure")
    assert figures.count() >= 3
    assert figures.first.locator("img").bounding_box()["width"] == 224  # full size
    # The patches wholly on screen (tiles are 224 px, so not a whole page of them).
    ids = grid_on_screen(page)
    n = len(ids)
    assert n >= 3
    figures.nth(0).click()
    figures.nth(2).click(modifiers=["Shift"])  # a range: items 0..2
    other = imported.classes.exclude(pk=label.pk).order_by("index").first()
    page.keyboard.press(other.hotkey)
    page.wait_for_function("document.querySelectorAll('#grid-items figure.done').length === 3")
    wait_js(page, "document.getElementById('grid-status').textContent"
                  f".includes('Enter agrees to {n - 3} seen')")  # each whole on screen for 1 s
    page.keyboard.press("Enter")
    wait_reviews(n, reviewer=users["reviewer"])
    for patch_id in ids[:3]:
        patch = Patch.objects.get(pk=patch_id)
        assert (patch.current_label_id, patch.status) == (other.pk, PatchStatus.CORRECTED)
    for patch_id in ids[3:]:
        assert Patch.objects.get(pk=patch_id).status == PatchStatus.CONFIRMED
    assert Review.objects.filter(reviewer=users["reviewer"]).count() == n  # one row each
