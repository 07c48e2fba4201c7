"""The slide viewer in Chromium: tiles, the heatmap overlay, its controls, and a click that
opens a patch which the usual keys then label."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotations.models import Patch
from tests.test_browser import log_in
from tests.test_slides import predicted_slide, svs  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"

# Non-transparent pixels of the heatmap canvas: what the overlay actually drew.
PAINTED = """() => {
  const c = document.getElementById('heatmap-canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
  return n;
}"""


def painted(page) -> int:
    return page.evaluate(PAINTED)


def test_heatmap_over_the_slide_toggles_and_opens_a_patch(page, live_server, users,
                                                          predicted_slide):  # noqa: F811
    slide, project = predicted_slide, predicted_slide.project
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{project.slug}/slides/{slide.pk}/")
    page.wait_for_selector("#slide-viewer[data-cells]", timeout=20000)
    assert int(page.get_attribute("#slide-viewer", "data-cells")) == slide.patches.count()
    # the slide's own Deep Zoom tiles are drawn (not a blank viewer)
    page.wait_for_function("() => window.slideViewer?.world.getItemAt(0)?.getFullyLoaded()",
                           timeout=20000)
    page.wait_for_function(f"({PAINTED})() > 1000", timeout=10000)
    everything = painted(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "slide_viewer.png"), full_page=True)

    # one class off: fewer cells drawn; all back on: the same again
    toggles = page.locator(".class-toggle")
    for i in range(toggles.count()):
        toggles.nth(i).uncheck()
        fewer = painted(page)
        toggles.nth(i).check()
        if fewer < everything:
            break
    else:
        raise AssertionError("no class toggle changed the overlay")
    assert painted(page) == everything
    slider = page.locator("#heatmap-opacity")  # dragged to the far left, then back
    box = slider.bounding_box()
    page.mouse.click(box["x"] + 1, box["y"] + box["height"] / 2)
    assert page.input_value("#heatmap-opacity") == "0" and painted(page) == 0
    slider.focus()
    for _ in range(70):
        page.keyboard.press("ArrowRight")
    assert page.input_value("#heatmap-opacity") == "70"
    page.locator("h1").click()  # focus off the slider, so h reaches the page
    page.keyboard.press("h")
    assert painted(page) == 0
    page.keyboard.press("h")
    assert painted(page) == everything

    # areas at a lower confidence, asked for on the page; a link zooms the viewer in on one
    page.fill("#area-options input[name=threshold]", "0.3")
    with page.expect_navigation():
        page.click("#area-options button")
    page.wait_for_function("() => window.slideViewer?.world.getItemAt(0)?.getFullyLoaded()",
                           timeout=20000)
    smallest = page.locator(".area-link").last  # listed largest first
    page.set_viewport_size({"width": 1400, "height": 800})  # a laptop: the list is below
    smallest.scroll_into_view_if_needed()  # the viewer, scrolled to with the page
    smallest.click()
    viewer = page.evaluate("(() => { const r = document.getElementById('slide-viewer')"
                           ".getBoundingClientRect(); return [r.top, r.bottom, innerHeight]; })()")
    assert viewer[0] >= -1 and viewer[1] <= viewer[2] + 1, viewer  # wholly in the window
    assert page.get_attribute("#slide-viewer", "data-focused") == (
        f'{smallest.get_attribute("data-x")},{smallest.get_attribute("data-y")}')
    page.wait_for_function("""([x, y, w, h]) => {
      const v = window.slideViewer, item = v.world.getItemAt(0);
      const shown = item.viewportToImageRectangle(v.viewport.getBounds(true));
      const cx = shown.x + shown.width / 2, cy = shown.y + shown.height / 2;
      return Math.abs(cx - (x + w / 2)) < w / 4 + 5 && Math.abs(cy - (y + h / 2)) < h / 4 + 5
        && shown.width >= w && shown.height >= h && shown.width <= 3 * Math.max(w, h);
    }""", arg=[int(smallest.get_attribute(k)) for k in ("data-x", "data-y", "data-w", "data-h")],
        timeout=10000)

    # a click on a tissue cell opens its patch, and a class key labels it there
    page.locator("#heatmap-show").click()  # off and on, after the zoom settles
    page.locator("#heatmap-show").click()
    target = Patch.objects.filter(slide=slide).order_by("-slide_y", "slide_x").first()
    point = page.evaluate("""([x, y]) => {
      const v = window.slideViewer, item = v.world.getItemAt(0);
      v.viewport.panTo(item.imageToViewportCoordinates(x, y), true);
      const p = item.imageToViewerElementCoordinates(new OpenSeadragon.Point(x, y));
      const box = v.element.getBoundingClientRect();
      return [box.left + p.x, box.top + p.y];
    }""", [target.slide_x + 112, target.slide_y + 112])
    page.mouse.click(*point)
    page.wait_for_url(f"**/p/{project.slug}/patches/{target.pk}/", timeout=10000)
    assert page.inner_text("#current-label") == "(none)"
    label = project.classes.exclude(hotkey="").order_by("index").first()
    page.keyboard.press(label.hotkey)
    page.wait_for_function(
        f"() => document.getElementById('current-label').innerText === {label.name!r}",
        timeout=10000)
    target.refresh_from_db()
    assert target.current_label_id == label.pk and target.status == "corrected"

    # and back: the patch page's slide link shows the tile in its context on the slide
    page.click("#on-slide")
    page.wait_for_selector(f"#slide-viewer[data-focused='{target.slide_x},{target.slide_y}']",
                           timeout=20000)
    shown = page.evaluate("""() => {
      const v = window.slideViewer;
      return v.world.getItemAt(0).viewportToImageRectangle(v.viewport.getBounds(true));
    }""")
    assert shown["x"] <= target.slide_x and shown["y"] <= target.slide_y
    assert shown["width"] < slide.width and shown["height"] < slide.height
