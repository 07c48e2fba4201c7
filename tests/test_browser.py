"""The pages in a real browser: Debian's Chromium driven by Playwright."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotations.models import Patch

pytestmark = pytest.mark.browser
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")


@pytest.mark.django_db(transaction=True)
def test_log_in_browse_and_open_a_patch_in_context(page, live_server, users, imported):
    log_in(page, live_server, "viewer")
    page.click(f"text={imported.name}")
    assert page.locator("#class-counts tbody tr").count() == imported.classes.count()
    page.click("text=Patches")
    first = page.locator(".patch-card").first  # an edge patch: blanks too
    first.click()
    page.wait_for_load_state("load")  # the pane centres itself then: measure after that
    patch = Patch.objects.get(pk=int(page.url.rstrip("/").split("/")[-1]))
    assert page.inner_text("#current-label") == patch.current_label.name
    cells = page.locator("#context .cell")
    assert cells.count() == 25
    centre = page.locator("#context .centre")
    assert centre.count() == 1
    box = page.locator("#context").bounding_box()
    assert box["width"] == pytest.approx(box["height"], abs=2)
    inner = centre.bounding_box()  # the centre sits in the middle fifth both ways
    assert inner["x"] - box["x"] == pytest.approx(box["width"] * 2 / 5, abs=3)
    assert inner["y"] - box["y"] == pytest.approx(box["height"] * 2 / 5, abs=3)
    assert inner["width"] == pytest.approx(box["width"] / 5, abs=3)
    # every present tile actually loaded as an image
    page.wait_for_function("""() => [...document.querySelectorAll('#context img')]
                                .every(img => img.complete && img.naturalWidth === 224)""",
                           timeout=15000)
    # Tissue at full size: 224 CSS px a tile (it was 128-145), the centre scrolled into the
    # middle of the pane; "=" fits the whole context, and back.
    assert inner["width"] == pytest.approx(224, abs=1)
    pane = page.locator("#context-pane").bounding_box()
    assert pane["x"] <= inner["x"] and inner["x"] + inner["width"] <= pane["x"] + pane["width"]
    assert pane["y"] <= inner["y"] and inner["y"] + inner["height"] <= pane["y"] + pane["height"]
    assert abs((inner["x"] + 112) - (pane["x"] + pane["width"] / 2)) < 20  # centred
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "patch_page.png"))
    page.keyboard.press("=")
    fitted = page.locator("#context").bounding_box()
    assert fitted["width"] < 1120 and fitted["width"] <= pane["width"] + 1
    page.keyboard.press("=")
    assert centre.bounding_box()["width"] == pytest.approx(224, abs=1)


@pytest.mark.django_db(transaction=True)
def test_outsider_sees_no_projects(page, live_server, users, imported):
    log_in(page, live_server, "outsider")
    assert imported.name not in page.content()
    response = page.goto(f"{live_server.url}/p/{imported.slug}/")
    assert response.status == 404
