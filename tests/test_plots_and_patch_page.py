"""Issue 10: plots where people look (project page, server-rendered SVG, downloadable) and
the patch page as a place to review from (model's opinion, same keys, reasons, prev/next
within the browser's filter), in Debian's Chromium and through the API."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from django.utils import timezone

from annotations.models import Patch, PatchStatus
from annotations.plots import bars, heatmap
from annotations.queues import audit_estimate, queue_queryset
from annotations.reviewing import Decision, submit
from annotations.stats import class_counts
from annotations.timeline import audit_error_by_day, decisions_by_day
from tests.test_browser import ARTIFACTS, log_in
from tests.test_review_page_bugs import modelled  # noqa: F401 - a fixture

SVG = "{http://www.w3.org/2000/svg}"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg.encode())


def test_plot_text_is_escaped_and_the_numbers_are_in_desc():
    names = ['<script>alert("x")</script>', "Kaposi’s sarcoma & co"]
    plot = heatmap("m", "A & B", names, names, [[3, 1], [0, 2]], "original", "reviewed")
    root = parse(plot.svg)  # well-formed XML: nothing unescaped got through
    assert "<script>" not in plot.svg and root.find(f"{SVG}script") is None
    assert root.find(f"{SVG}title").text == "A & B"
    desc = root.find(f"{SVG}desc").text
    assert f'{names[0]} → {names[1]}: 1' in desc and "6 in all, 5 on the diagonal" in desc
    chart = bars("b", "t", ["x"], [("F1", [0.5], "#000")], top=1.0, fmt=lambda v: f"{v:.2f}")
    assert parse(chart.svg).find(f"{SVG}desc").text == "x: 0.50."


@pytest.mark.django_db
def test_audit_error_by_day_ends_at_the_project_estimate(users, imported):
    first, second, third = list(queue_queryset(imported, "audit")[:3])
    submit(imported, users["reviewer"], first.pk, Decision("confirm", first.version))
    wrong = imported.classes.exclude(pk=second.current_label_id).first().pk
    submit(imported, users["reviewer"], second.pk, Decision("correct", second.version, wrong))
    submit(imported, users["reviewer"], third.pk, Decision("unsure", third.version))
    (day,) = audit_error_by_day(imported)
    estimate = audit_estimate(imported)
    assert day.day == timezone.localdate()
    assert (day.reviewed, day.wrong_total) == (estimate.reviewed, estimate.wrong) == (2, 1)
    assert (day.rate, day.low, day.high) == (estimate.rate, estimate.low, estimate.high)
    ((_day, counts),) = decisions_by_day(imported)
    assert counts == {"confirm": 1, "correct": 1, "unsure": 1}


def _with_metrics(project):
    from inference.queries import active_version

    version = active_version(project)
    names = version.class_names
    matrix = [[0] * len(names) for _ in names]
    matrix[0][0], matrix[0][1], matrix[1][1] = 7, 2, 5
    f1 = {name: 0.0 for name in names}
    f1[names[0]], f1[names[1]] = 0.82, 0.77
    version.metrics = {"accuracy": 0.857, "balanced_accuracy": 0.8, "weighted_f1": 0.8,
                       "n": 14, "evaluated_on": "test", "confusion_matrix": matrix,
                       "per_class_f1": f1}
    version.save(update_fields=["metrics"])
    return version


def desc_of(page, name: str) -> str:
    return page.locator(f"svg[data-plot={name}] > desc").text_content()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_project_page_draws_the_plots_with_their_numbers(page, live_server, users,
                                                        modelled):  # noqa: F811
    project = modelled
    version = _with_metrics(project)
    patches = list(Patch.objects.filter(project=project).order_by("id")[:3])
    other = project.classes.exclude(pk=patches[1].current_label_id).first()
    submit(project, users["reviewer"], patches[0].pk, Decision("confirm", patches[0].version))
    submit(project, users["reviewer"], patches[1].pk,
           Decision("correct", patches[1].version, other.pk))
    submit(project, users["reviewer"], patches[2].pk, Decision("unsure", patches[2].version))
    was, now = patches[1].current_label.name, other.name

    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/p/{project.slug}/")
    for name in ("class_counts", "change_matrix", "decisions", "confusion", "class_f1"):
        assert page.locator(f"svg[data-plot={name}]").count() == 1, name
    assert page.locator("svg[data-plot=change_matrix] > title").text_content() == \
        "Original vs reviewed label (settled patches)"
    assert f"{was} → {now}: 1" in desc_of(page, "change_matrix")
    first = class_counts(project)[0]
    assert f"{first.name}: original {first.original}, current {first.current}" in \
        desc_of(page, "class_counts")
    today = timezone.localdate().isoformat()
    assert f"{today}: 3 (1 confirm, 1 correct, 1 unsure)" in desc_of(page, "decisions")
    names = version.class_names
    assert f"{names[0]} → {names[1]}: 2" in desc_of(page, "confusion")
    assert f"{names[0]}: 0.82; {names[1]}: 0.77" in desc_of(page, "class_f1")
    assert version.name in page.locator("svg[data-plot=confusion] > title").text_content()
    # the numbers stay one click away: the table behind the plot
    assert page.locator("#class-counts").is_hidden()
    page.click("#plot-class_counts button.plot-table")
    assert page.locator("#class-counts").is_visible()

    href = page.get_attribute("#plot-change_matrix a.plot-download", "href")
    response = page.request.get(live_server.url + href)
    assert response.status == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    assert f"{was} → {now}: 1" in parse(response.text().split("\n", 1)[1]) \
        .find(f"{SVG}desc").text
    with page.expect_download() as download:
        page.click("#plot-confusion button.plot-png")
    path = download.value.path()
    assert download.value.suggested_filename == f"{project.slug}-confusion.png"
    assert Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "project_plots.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_audit_error_plot_over_time(page, live_server, users, imported):
    first, second = list(queue_queryset(imported, "audit")[:2])
    submit(imported, users["reviewer"], first.pk, Decision("confirm", first.version))
    wrong = imported.classes.exclude(pk=second.current_label_id).first().pk
    submit(imported, users["reviewer"], second.pk, Decision("correct", second.version, wrong))
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/")
    desc = desc_of(page, "audit_error")
    assert "1 of 2 so far, error rate 50%" in desc and "95% CI" in desc


def api_patch(page, live_server, project, pk: int) -> dict:
    response = page.request.get(f"{live_server.url}/api/projects/{project.slug}/patches/{pk}/")
    assert response.status == 200
    return response.json()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_review_from_the_patch_page_with_a_key(page, live_server, users,
                                               modelled):  # noqa: F811
    project = modelled
    from inference.queries import opinions

    patch = next(p for p in Patch.objects.filter(project=project).order_by("id")
                 if opinions(project, [p.pk])[p.pk].predicted != p.current_label.name)
    said = opinions(project, [patch.pk])[patch.pk]
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{project.slug}/patches/{patch.pk}/")
    assert page.locator("#model-top li").count() == 3
    assert page.inner_text("#model-verdict").startswith(
        f"Model disagrees with the label: it says {said.predicted}")
    assert page.locator("#class-buttons button.suggested").inner_text().endswith(said.predicted)
    # missing context drawn as on the review page: the same stripes, no text
    blank = page.locator("#context .blank").first
    if blank.count():
        assert blank.inner_text() == ""
        assert "repeating-linear-gradient" in blank.evaluate(
            "(e) => getComputedStyle(e).backgroundImage")
    target = project.classes.exclude(pk=patch.current_label_id).exclude(
        name=said.predicted).order_by("index").first()
    page.keyboard.press(target.hotkey)
    page.wait_for_function("document.body.dataset.saved === '1'", timeout=15000)
    state = api_patch(page, live_server, project, patch.pk)
    assert state["current_label"] == target.name and state["status"] == PatchStatus.CORRECTED
    assert page.inner_text("#current-label") == target.name
    assert f"Correct → {target.name}" in page.inner_text("#history")
    page.keyboard.press(";")  # accept the model's class, from the same page
    page.wait_for_function("document.body.dataset.saved === '2'", timeout=15000)
    assert api_patch(page, live_server, project, patch.pk)["current_label"] == said.predicted
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "patch_page.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_previous_and_next_walk_the_filtered_list(page, live_server, users, imported):
    label = imported.classes.order_by("index").first()
    wanted = list(Patch.objects.filter(project=imported, current_label=label)
                  .order_by("id").values_list("id", flat=True))
    assert len(wanted) >= 3
    log_in(page, live_server, "viewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/patches/?current_label={label.pk}")
    page.locator(".patch-card").first.click()
    page.wait_for_url(f"**/patches/{wanted[0]}/?current_label={label.pk}")
    assert page.locator("#previous-patch").count() == 0
    walked = [wanted[0]]
    for _ in wanted[1:3]:
        page.click("#next-patch")
        page.wait_for_load_state()
        walked.append(int(page.url.split("/patches/")[1].split("/")[0]))
        assert page.inner_text("#current-label") == label.name
    assert walked == wanted[:3]
    page.keyboard.press("ArrowLeft")
    page.wait_for_url(f"**/patches/{wanted[1]}/?current_label={label.pk}")
    page.click("#patch-list-link")
    assert page.locator(".patch-card").count() == len(wanted[:60])


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_unsure_with_a_reason_shows_in_the_history(page, live_server, users, imported):
    patch = Patch.objects.filter(project=imported).order_by("id")[5]
    log_in(page, live_server, "reviewer")
    page.goto(f"{live_server.url}/p/{imported.slug}/patches/{patch.pk}/")
    page.keyboard.press("u")
    assert page.locator("#unsure-comment").is_visible()
    page.keyboard.type("mitotic figures? ask Dr. <b>Ng</b>")
    page.keyboard.press("Enter")
    page.wait_for_function("document.body.dataset.saved === '1'", timeout=15000)
    history = page.inner_text("#history")
    assert "Unsure" in history and "mitotic figures? ask Dr. <b>Ng</b>" in history
    patch.refresh_from_db()
    assert patch.status == PatchStatus.UNSURE
    assert patch.reviews.get().comment == "mitotic figures? ask Dr. <b>Ng</b>"
    page.keyboard.press("x")  # exclude takes a comment too, then the reason's number
    page.click("#exclude-comment")
    page.keyboard.type("folded edge")
    page.click("#exclude-box button[data-reason='artefact']")
    page.wait_for_function("document.body.dataset.saved === '2'", timeout=15000)
    assert "(artefact): “folded edge”" in page.inner_text("#history") or \
        "(artefact): folded edge" in page.inner_text("#history")
