"""Issue 10, the review pages in Debian's Chromium: each test presses keys and clicks as a
pathologist would, and checks what the page then does (requests, decisions, geometry)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from annotations.models import LabelClass, Patch, PatchStatus, Review
from tests.test_browser import ARTIFACTS, log_in
from tests.test_review_browser import (
    grid_on_screen,
    next_shown,
    shown,
    wait_js,
    wait_reviews,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SMALL = {"width": 1280, "height": 720}
LARGE = {"width": 1920, "height": 1080}


@pytest.fixture
def sized(browser, request):
    """A page of the viewport size the test is parametrised with (1280x720 by default)."""
    context = browser.new_context(viewport=getattr(request, "param", SMALL))
    yield context.new_page()
    context.close()


@pytest.fixture
def modelled(imported):
    """An active model that disagrees with the label on every other patch (by id)."""
    from inference.models import EmbeddingSpace, ModelVersion
    from inference.predicting import store_predictions
    from inference.queue_scores import activate_version

    names = list(imported.classes.order_by("index").values_list("name", flat=True))
    space = EmbeddingSpace.objects.create(backbone="color-texture", embed_dim=8)
    version = ModelVersion.objects.create(
        project=imported, name="test-head", space=space, head_file="h",
        head_sha256="0" * 64, class_names=names, source="registered")
    by_id = {c.pk: i for i, c in enumerate(imported.classes.order_by("index"))}
    rows = list(Patch.objects.filter(project=imported).order_by("id")
                .values_list("id", "current_label_id"))
    probs = np.full((len(rows), len(names)), 0.02 / max(1, len(names) - 3))
    for k, (_, label) in enumerate(rows):
        own = by_id[label]
        other = (own + 1) % len(names)
        third = (own + 2) % len(names)
        first, second = (other, own) if k % 2 == 0 else (own, other)
        probs[k, first], probs[k, second], probs[k, third] = 0.7, 0.2, 0.08
    store_predictions(version, [r[0] for r in rows], [r[1] for r in rows], probs)
    activate_version(version)
    return imported


def open_grid(page, live_server, project):
    """Grid mode of the unreviewed queue, as the reviewer; its figures once shown."""
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{project.slug}/review/grid/?queue=unreviewed")
    page.wait_for_selector("#grid-items figure", timeout=15000)
    return page.locator("#grid-items figure")


def rect(page, selector: str) -> dict:
    return page.evaluate(f"""() => {{ const r = document.querySelector({selector!r})
        .getBoundingClientRect(); return {{x: r.x, y: r.y, w: r.width, h: r.height}}; }}""")


def inside(inner: dict, outer: dict, slack: float = 1.0) -> bool:
    return (inner["x"] >= outer["x"] - slack and inner["y"] >= outer["y"] - slack
            and inner["x"] + inner["w"] <= outer["x"] + outer["w"] + slack
            and inner["y"] + inner["h"] <= outer["y"] + outer["h"] + slack)


def centred(inner: dict, outer: dict, slack: float = 3.0) -> bool:
    return (abs(inner["x"] + inner["w"] / 2 - outer["x"] - outer["w"] / 2) <= slack
            and abs(inner["y"] + inner["h"] / 2 - outer["y"] - outer["h"] / 2) <= slack)


def visible_area(page) -> dict:
    """The part of the viewer (the pan area, less its scroll bars) inside the window."""
    return page.evaluate("""() => { const v = document.getElementById('viewer');
        const r = v.getBoundingClientRect();
        return {x: r.x + v.clientLeft, y: r.y + v.clientTop,
                w: Math.min(v.clientWidth, innerWidth - r.x - v.clientLeft),
                h: Math.min(v.clientHeight, innerHeight - r.y - v.clientTop)}; }""")


def images_loaded(page) -> None:
    page.wait_for_function("[...document.querySelectorAll('#grid-items img')]"
                           ".every((i) => i.complete)", timeout=15000)


# Bug 4 ---------------------------------------------------------------------------------------

def test_refused_queue_says_why_and_stops_asking(sized, live_server, users, imported):
    asked = []
    sized.on("request", lambda r: asked.append(r.url) if "/next/" in r.url else None)
    log_in(sized, live_server, "reviewer")
    sized.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=disputed")
    sized.wait_for_selector("#banner:not([hidden])", timeout=15000)
    sized.wait_for_timeout(3000)
    assert len(asked) <= 2, f"{len(asked)} requests to /next/ in 3 s"
    text = sized.inner_text("#banner")
    assert "only project admins adjudicate" in text
    assert "not ask again" in text  # says the page has stopped, and why
    assert sized.inner_text("#review-status") == ""  # not "loading…" for ever


# Bug 6 ---------------------------------------------------------------------------------------


def test_grid_enter_confirms_only_what_was_on_screen_and_undoes_the_batch(
        sized, live_server, users, imported):
    page = sized
    figures = open_grid(page, live_server, imported)
    n = figures.count()
    on_screen = grid_on_screen(page)
    assert 0 < len(on_screen) < n  # the page has patches below the fold
    figures.nth(0).click()
    other = imported.classes.order_by("index")[1]
    page.keyboard.press(other.hotkey)
    page.wait_for_function("document.querySelectorAll('#grid-items figure.done').length")
    wait_js(page, "document.getElementById('grid-status').textContent"
                  f".includes('Enter agrees to {len(on_screen) - 1} seen')")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "document.querySelectorAll('#grid-items figure.done').length > 1", timeout=15000)
    wait_reviews(len(on_screen), reviewer=users["reviewer"])
    time.sleep(0.5)
    decided = set(Review.objects.filter(reviewer=users["reviewer"])
                  .values_list("patch_id", flat=True))
    assert decided <= set(on_screen), "confirmed patches never scrolled into view"
    assert len(decided) == len(on_screen)
    summary = page.inner_text("#banner")
    assert f"{len(on_screen) - 1} confirmed" in summary and "1 relabelled" in summary
    assert f"{n - len(on_screen)} not yet seen" in summary
    ARTIFACTS.mkdir(exist_ok=True)
    images_loaded(page)
    page.screenshot(path=str(ARTIFACTS / "review_grid.png"))
    page.click("#banner button[data-undo]")
    page.wait_for_function(
        "document.querySelectorAll('#grid-items figure.done').length === 1", timeout=15000)
    deadline = time.monotonic() + 10
    while (Patch.objects.filter(pk__in=on_screen, status=PatchStatus.CONFIRMED).exists()
           and time.monotonic() < deadline):
        time.sleep(0.1)
    assert not Patch.objects.filter(pk__in=on_screen, status=PatchStatus.CONFIRMED).exists()
    assert "undone" in page.inner_text("#banner").lower()


# Bug 7 ---------------------------------------------------------------------------------------

def test_space_after_a_click_decides_nothing(sized, live_server, users, imported):
    log_in(sized, live_server, "reviewer")
    sized.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    first = shown(sized)
    patch = Patch.objects.get(pk=first)
    other = imported.classes.exclude(pk=patch.current_label_id).order_by("index").first()
    sized.click(f"#class-buttons button[data-class='{other.pk}']")
    second = next_shown(sized, first)
    wait_reviews(1, reviewer=users["reviewer"])
    sized.keyboard.press(" ")
    sized.keyboard.press(" ")
    sized.wait_for_timeout(1500)
    assert int(sized.evaluate("document.body.dataset.patch")) == second
    assert list(Review.objects.filter(reviewer=users["reviewer"])
                .values_list("patch_id", flat=True)) == [first]
    sized.click("button[data-action='skip']")  # an action button, then Space: nothing either
    third = next_shown(sized, second)
    sized.keyboard.press(" ")
    sized.wait_for_timeout(1000)
    assert int(sized.evaluate("document.body.dataset.patch")) == third
    assert Review.objects.filter(reviewer=users["reviewer"]).count() == 1


# Bug 8 and 9, and the patch at native size ----------------------------------------------------

@pytest.mark.parametrize("sized", [SMALL, LARGE], indirect=True, ids=["1280", "1920"])
def test_centre_patch_native_size_centred_zoom_and_banner(sized, live_server, users, imported):
    log_in(sized, live_server, "reviewer")
    sized.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    shown(sized)
    sized.wait_for_timeout(300)
    centre = rect(sized, "#context-grid .centre")
    area = visible_area(sized)
    assert centre["w"] >= 224 and centre["h"] >= 224, centre
    assert inside(centre, area) and centred(centre, area), (centre, area)
    sized.keyboard.press("=")  # fit the whole context
    sized.wait_for_timeout(200)
    grid = rect(sized, "#context-grid")
    assert inside(grid, visible_area(sized)), "the fitted context is not all in view"
    sized.keyboard.press("=")  # back to 100%: the centre patch is centred again
    sized.wait_for_timeout(200)
    centre = rect(sized, "#context-grid .centre")
    assert centre["w"] >= 224 and inside(centre, area) and centred(centre, area), centre
    before = rect(sized, "#viewer")
    sized.keyboard.press("Backspace")  # nothing to undo: a banner
    sized.wait_for_selector("#banner:not([hidden])")
    assert rect(sized, "#viewer") == before, "the banner moved the image"
    assert before["y"] + before["h"] <= sized.viewport_size["height"]


def test_loupe_pan_and_scale_bar(sized, live_server, users, imported):
    log_in(sized, live_server, "reviewer")
    sized.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    shown(sized)
    centre = rect(sized, "#context-grid .centre")
    scale = centre["w"] / 224
    bar = rect(sized, "#scale-bar .bar")
    assert "50 µm" in sized.inner_text("#scale-bar")
    assert abs(bar["w"] - 100 * scale) <= 1.5, (bar, scale)
    # Drag to pan: the context moves with the mouse.
    before = sized.evaluate("[viewer.scrollLeft, viewer.scrollTop]")
    x, y = centre["x"] + 20, centre["y"] + 20
    sized.mouse.move(x, y)
    sized.mouse.down()
    sized.mouse.move(x + 80, y + 60, steps=5)
    sized.mouse.up()
    after = sized.evaluate("[viewer.scrollLeft, viewer.scrollTop]")
    assert after[0] == pytest.approx(before[0] - 80, abs=2)
    assert after[1] == pytest.approx(before[1] - 60, abs=2)
    assert Review.objects.count() == 0  # a drag decides nothing
    # Hold Space: a 2x loupe over the centre patch; let go: gone.
    sized.keyboard.down(" ")
    sized.wait_for_selector("#loupe:not([hidden])")
    loupe = sized.evaluate("""() => { const l = document.getElementById('loupe');
        return {size: getComputedStyle(l).backgroundSize,
                centre: document.querySelector('#context-grid .centre').getBoundingClientRect()
                        .width}; }""")
    assert float(loupe["size"].split("px")[0]) == pytest.approx(2 * loupe["centre"], abs=1)
    sized.keyboard.up(" ")
    sized.wait_for_selector("#loupe", state="hidden")
    assert Review.objects.count() == 0


# The model's suggestion --------------------------------------------------------------------

def test_model_suggestion_marked_and_one_key_accepts_it(sized, live_server, users, modelled):
    log_in(sized, live_server, "reviewer")
    sized.goto(f"{live_server.url}/p/{modelled.slug}/review/?queue=disagreement")
    current = shown(sized)
    sized.wait_for_timeout(300)
    patch = Patch.objects.get(pk=current)
    from inference.queries import opinions

    said = opinions(modelled, [current])[current]
    assert said.disagree
    suggested = LabelClass.objects.get(project=modelled, name=said.predicted)
    marked = sized.locator("#class-buttons button.suggested")
    assert marked.count() == 1 and marked.get_attribute("data-class") == str(suggested.pk)
    assert "model disagrees with the label" in sized.inner_text("#decision").lower()
    bars = sized.locator("#model-top .bar")
    assert bars.count() == 3
    widths = [b["w"] for b in (sized.evaluate(
        "[...document.querySelectorAll('#model-top .bar')].map((b) => ({w: b.offsetWidth}))"))]
    assert widths[0] > widths[1] > widths[2] > 0
    assert "Accept the model's class" in sized.inner_text("#help") or \
        "accept the model" in sized.inner_html("#help")
    ARTIFACTS.mkdir(exist_ok=True)
    sized.screenshot(path=str(ARTIFACTS / "review_page.png"))
    sized.keyboard.press(";")
    next_shown(sized, current)
    wait_reviews(1, reviewer=users["reviewer"])
    patch.refresh_from_db()
    assert patch.current_label_id == suggested.pk
    assert patch.status == PatchStatus.CORRECTED


def test_grid_captions_show_the_models_class(browser, live_server, users, modelled):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    try:
        log_in(page, live_server, "reviewer")
        page.goto(f"{live_server.url}/p/{modelled.slug}/review/grid/?queue=unreviewed")
        page.wait_for_selector("#grid-items figure", timeout=15000)
        cut = page.evaluate("""() => [...document.querySelectorAll(
            '#grid-items figcaption, #grid-items figcaption *')]
            .filter((e) => e.scrollWidth > e.clientWidth + 1).length""")
        assert cut == 0
        caption = page.inner_text("#grid-items figure figcaption")
        names = set(modelled.classes.values_list("name", flat=True))
        assert "model" in caption and any(name in caption.split("model")[1] for name in names)
        ARTIFACTS.mkdir(exist_ok=True)
        images_loaded(page)
        page.screenshot(path=str(ARTIFACTS / "review_grid_model.png"))
    finally:
        context.close()


# Found by a browser walk (2026-12-04) -----------------------------------------------------

def test_fast_keys_and_a_double_click_decide_only_patches_that_were_on_screen(
        sized, live_server, users, imported):
    """Enter pressed 10 times 60 ms apart confirmed patches still decoding (a blank viewer)
    or still showing the previous patch's tiles, with time_spent_ms of 140-255; the second
    click of a double click on a class button corrected the next patch 3 ms after it
    appeared. Each decision must be about a patch shown for at least 200 ms."""
    page = sized
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    first = shown(page)
    page.evaluate("""() => { window.decidable = [];
        new MutationObserver(() => { if (document.body.dataset.patch)
            window.decidable.push(Number(document.body.dataset.patch)); })
          .observe(document.body, {attributes: true, attributeFilter: ["data-patch"]}); }""")
    for _ in range(10):
        page.keyboard.press("Enter")
        page.wait_for_timeout(60)
    page.wait_for_timeout(600)
    decidable = {first, *page.evaluate("window.decidable")}
    reviews = list(Review.objects.filter(reviewer=users["reviewer"]))
    assert 1 <= len(reviews) <= 4, [r.patch_id for r in reviews]  # 660 ms: 200 ms a look
    assert {r.patch_id for r in reviews} <= decidable, "decided a patch never on screen"
    assert all(r.time_spent_ms >= 200 for r in reviews), [r.time_spent_ms for r in reviews]

    before = len(reviews)
    on_screen = shown(page)
    page.wait_for_timeout(300)
    label = imported.classes.exclude(pk=Patch.objects.get(pk=on_screen).current_label_id
                                     ).order_by("index").first()
    page.dblclick(f"#class-buttons button[data-class='{label.pk}']")
    page.wait_for_timeout(800)
    after = list(Review.objects.filter(reviewer=users["reviewer"]).order_by("id"))[before:]
    assert [(r.patch_id, r.action) for r in after] == [(on_screen, "correct")]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review_fast_keys.png"))


@pytest.mark.parametrize("sized", [{"width": 1920, "height": 3300}], indirect=True)  # a page fits
def test_grid_enter_twice_sends_one_batch_and_never_confirms_a_page_just_shown(
        sized, live_server, users, imported):
    """Enter pressed twice quickly sent the same batch twice (the banner then said
    'Confirmed 0.' over a wall of the user's own 'changed since you loaded it'); Enter
    250 ms after the one that loaded the next page confirmed that page unseen."""
    page = sized
    figures = open_grid(page, live_server, imported)
    n = figures.count()
    first_page = {int(figures.nth(i).get_attribute("data-patch")) for i in range(n)}
    wait_js(page, "document.getElementById('grid-status').textContent"
                  f".includes('Enter agrees to {n} seen')")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    page.keyboard.press("Enter")
    wait_js(page, "document.getElementById('banner').textContent.includes('page done')")
    banner = page.inner_text("#banner")
    assert f"Confirmed {n}." in banner and "changed since" not in banner, banner
    assert Review.objects.filter(reviewer=users["reviewer"]).count() == n

    page.keyboard.press("Enter")  # loads the next page ...
    wait_js(page, "document.querySelectorAll('#grid-items figure:not(.done)').length > 0")
    page.wait_for_timeout(250)
    page.keyboard.press("Enter")  # ... and this must not confirm it unseen
    page.wait_for_timeout(800)
    decided = set(Review.objects.filter(reviewer=users["reviewer"])
                  .values_list("patch_id", flat=True))
    assert decided == first_page
    assert "Nothing seen to agree to yet" in page.inner_text("#banner")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "review_grid_enter_twice.png"))


def test_no_page_scrolls_sideways_in_a_narrow_window(browser, live_server, users, imported):
    """At 800 px the project page's imports table (857 px) and the rounds table (1015 px)
    made the whole page scroll sideways (a browser walk); a wide table now scrolls inside
    its card."""
    context = browser.new_context(viewport={"width": 800, "height": 900})
    page = context.new_page()
    try:
        log_in(page, live_server, "admin")
        base = f"{live_server.url}/p/{imported.slug}"
        patch = Patch.objects.filter(project=imported).first()
        for path in ("/", "/patches/", f"/patches/{patch.pk}/", "/review/?queue=unreviewed",
                     "/review/grid/?queue=unreviewed", "/settings/", "/classes/",
                     "/members/", "/reviewers/", "/rounds/"):
            page.goto(base + path)
            page.wait_for_load_state("load")
            wide = page.evaluate("document.documentElement.scrollWidth - innerWidth")
            assert wide <= 1, f"{path} is {wide} px wider than the window"
        ARTIFACTS.mkdir(exist_ok=True)
        page.goto(base + "/")
        page.screenshot(path=str(ARTIFACTS / "project_page_800px.png"), full_page=True)
    finally:
        context.close()


def test_a_patch_whose_centre_will_not_load_can_be_skipped_but_not_decided(
        sized, live_server, users, imported):
    """A tile that never loaded left the viewer blank with no key doing anything (keys wait
    for the patch to be drawn); now the patch is shown as far as it got, and a missing
    centre can be skipped, never decided. Here every tile request fails."""
    page = sized
    log_in(page, live_server, "reviewer")
    page.route("**/tiles/**", lambda route: route.abort())
    page.goto(f"{live_server.url}/p/{imported.slug}/review/?queue=unreviewed")
    first = shown(page)
    page.keyboard.press("Enter")
    page.wait_for_timeout(300)
    assert "centre patch has not loaded" in page.inner_text("#banner")
    assert not Review.objects.exists()
    page.keyboard.press("s")
    assert next_shown(page, first) != first
    assert not Review.objects.exists()
