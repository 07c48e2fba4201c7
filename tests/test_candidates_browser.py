"""Growing the dataset in Chromium: candidates answered with Enter (yes) and N (no) on the
review page, "more like this" on the patch page (its seed first) and on the review page (M)."""

from __future__ import annotations

import time

import pytest

from annotations.models import Patch, PatchStatus
from inference.similarity.actions import start_candidates, start_index
from inference.similarity.models import Candidate
from tests.test_browser import ARTIFACTS, log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
pytest_plugins = ["tests.similarity_fixtures"]


def wait_js(page, expression: str, seconds: float = 15) -> None:
    """Poll ``expression`` in the page (page.wait_for_function compiles its predicate with
    eval, which the site's Content-Security-Policy refuses)."""
    deadline = time.monotonic() + seconds
    while not page.evaluate(expression):
        assert time.monotonic() < deadline, f"timed out waiting for {expression}"
        time.sleep(0.1)


def shown(page, previous: int | None = None) -> int:
    """The patch the review page shows (once it is not ``previous``)."""
    wait_js(page, "document.body.dataset.patch && document.body.dataset.patch !== "
                  f"'{previous or ''}'")
    return int(page.evaluate("document.body.dataset.patch"))


@pytest.fixture
def proposed(embedded):
    from tests.similarity_fixtures import unlabel

    unlabel(embedded, 0)
    start_index(embedded, check=False)
    label = embedded.classes.order_by("index").first()
    seeds = list(Patch.objects.filter(project=embedded, current_label=label)
                 .order_by("id").values_list("id", flat=True)[:3])
    start_candidates(embedded, label.pk, seeds=seeds, k=6, check=False)
    return embedded, label


def test_accept_one_candidate_with_enter_and_reject_one_with_n(page, live_server, users,
                                                               proposed):
    project, label = proposed
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{project.slug}/review/?queue=candidates"
              f"&proposed_label={label.pk}")
    first = shown(page)
    page.wait_for_selector("#candidate-box:not([hidden])")
    assert page.inner_text("#candidate-label") == label.name
    assert "seed patch" in page.inner_text("#candidate-meta")
    assert page.inner_text("#current-label") == "(none)"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "candidates_queue.png"))
    page.keyboard.press("Enter")
    second = shown(page, first)
    page.keyboard.press("n")
    third = shown(page, second)
    wait_js(page, "Number(document.body.dataset.answered || 0) >= 2")
    accepted = Patch.objects.get(pk=first)
    assert accepted.current_label == label and accepted.status == PatchStatus.CORRECTED
    assert Candidate.objects.get(patch_id=first, label=label).state == "accepted"
    assert Candidate.objects.get(patch_id=second, label=label).state == "rejected"
    assert Patch.objects.get(pk=second).current_label is None
    # More like this (M) for the patch now shown: itself first.
    page.keyboard.press("m")
    page.wait_for_selector("#similar .similar-results li", timeout=15000)
    assert int(page.locator("#similar .similar-results li").first.get_attribute(
        "data-patch")) == third
    page.screenshot(path=str(ARTIFACTS / "review_more_like_this.png"))
    page.keyboard.press("Escape")
    assert page.is_hidden("#similar")


def test_more_like_this_on_the_patch_page(page, live_server, users, proposed):
    project, label = proposed
    patch = Patch.objects.filter(project=project, current_label=label).order_by("id")[4]
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/p/{project.slug}/patches/{patch.pk}/")
    page.wait_for_selector("#similar[data-loaded]", timeout=15000)
    results = page.locator("#similar .similar-results li")
    assert int(results.first.get_attribute("data-patch")) == patch.pk
    assert results.count() == 12
    page.select_option("#similar select[name=split]", "test")
    wait_js(page, "document.querySelector('#similar .similar-status').textContent"
                  ".includes('most similar') && [...document.querySelectorAll("
                  "'#similar .similar-results a')].every(a => a.title.includes('· test ·'))")
    page.screenshot(path=str(ARTIFACTS / "patch_more_like_this.png"), full_page=True)
    second = int(results.nth(1).get_attribute("data-patch"))
    results.nth(1).locator("button.seed-add").click()
    wait_js(page, "document.querySelector('#similar .similar-status').textContent"
                  ".includes('2 seeds')")
    assert second in [int(results.nth(i).get_attribute("data-patch"))
                      for i in range(results.count())]
    # Its class by cosine to the class prototype, the most atypical first.
    from inference.similarity.actions import start_prototypes

    start_prototypes(project, check=False)
    page.select_option("#similar select[name=split]", "")
    page.select_option("#similar select[name=mode]", "atypical")
    wait_js(page, "document.querySelector('#similar .similar-status').textContent"
                  ".includes('most atypical first')")
    captions = page.locator("#similar .similar-caption").all_inner_texts()
    assert captions and all(label.name in c for c in captions)
    values = [float(c.split(" ·")[0]) for c in captions]
    assert values == sorted(values)
