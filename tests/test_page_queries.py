"""Every HTML page costs the same number of queries however big the project grows: each
page is requested as a member through Django's test client, then the project gets ten
times the patches, slides, predictions and reviews (written in bulk, triggers and all), and
each page must make exactly as many queries as before (issue 15).

bench/page_bench.py measures the time the same pages take at 10k and 160k patches.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from annotations.counts import project_counts
from annotations.models import (
    LabelClass,
    Patch,
    PatchStatus,
    Project,
    Review,
    ReviewAction,
    Slide,
    Tile,
)

pytestmark = pytest.mark.django_db

CLASSES = ("Tumour", "Stroma", "Necrosis", "Fat")


def grow(project: Project, patches: int, slides: int, reviewed: int, reviewers) -> None:
    """Add ``patches`` patches on ``slides`` new slides (one new tile each, context blank),
    the active model's predictions for them, and decisions on ``reviewed`` of them: review
    rows and the patches' derived state, as a bulk loader would write them."""
    from inference.predicting import store_predictions
    from inference.queries import active_version

    start = Patch.objects.filter(project=project).count()
    classes = list(project.classes.order_by("index"))
    new_slides = Slide.objects.bulk_create(
        [Slide(project=project, name=f"grown-{start}-{i}") for i in range(slides)])
    tiles = Tile.objects.bulk_create(
        [Tile(project=project, sha256=f"{start + i:064x}", file=f"t/{start + i}.png",
              name=f"t{start + i}.png") for i in range(patches)])
    made = Patch.objects.bulk_create([
        Patch(project=project, slide=new_slides[i % slides], split="train" if i % 4 else "test",
              image_name=f"grown-{start + i}.png", centre_tile=tile,
              grid=[None] * 12 + [tile.pk] + [None] * 12, missing_context=24,
              original_label=classes[i % len(classes)],
              current_label=classes[i % len(classes)])
        for i, tile in enumerate(tiles)])
    version = active_version(project)
    probs = np.full((len(made), len(classes)), 0.1)
    probs[np.arange(len(made)), (np.arange(len(made)) + 1) % len(classes)] = 0.7  # disagrees
    store_predictions(version, [p.pk for p in made], [p.current_label_id for p in made],
                      probs / probs.sum(axis=1, keepdims=True))
    decided = made[:reviewed]
    Review.objects.bulk_create([
        Review(patch=p, reviewer=reviewers[i % len(reviewers)], action=ReviewAction.CONFIRM,
               from_label=p.current_label, to_label=p.current_label, patch_version=1,
               time_spent_ms=1200)
        for i, p in enumerate(decided)])
    Patch.objects.filter(pk__in=[p.pk for p in decided]).update(
        status=PatchStatus.CONFIRMED, decisions=1, version=2)
    from inference.models import QueueScore

    QueueScore.objects.filter(patch__in=decided).update(unreviewed=False)


@pytest.fixture
def built(project, users):
    """A small project with a model, a whole slide, reviews and an export-free history."""
    from inference.models import EmbeddingSpace, ModelVersion
    from inference.queue_scores import activate_version

    LabelClass.objects.bulk_create([LabelClass(project=project, name=n, index=i,
                                               hotkey=str(i + 1))
                                    for i, n in enumerate(CLASSES)])
    space = EmbeddingSpace.objects.create(backbone="color-texture", embed_dim=8)
    version = ModelVersion.objects.create(
        project=project, name="test-head", space=space, head_file="h", head_sha256="0" * 64,
        class_names=list(CLASSES), source="registered")
    activate_version(version)
    reviewers = [users["reviewer"], users["admin"]]
    grow(project, patches=40, slides=2, reviewed=8, reviewers=reviewers)
    whole = Slide.objects.filter(project=project).order_by("id").first()
    Slide.objects.filter(pk=whole.pk).update(source_file="/slides/a.svs", width=224 * 5,
                                             height=224 * 5, mpp=0.5, tile_px=224)
    for i, patch in enumerate(Patch.objects.filter(slide=whole).order_by("id")[:25]):
        Patch.objects.filter(pk=patch.pk).update(slide_x=224 * (i % 5), slide_y=224 * (i // 5))
    return project, whole, reviewers


def page_urls(project: Project, whole: Slide) -> dict[str, str]:
    slug = project.slug
    first = Patch.objects.filter(project=project).order_by("id").first()
    label = project.classes.order_by("index").first()
    return {
        "project list": "/",
        "project": f"/p/{slug}/",
        "patch browser": f"/p/{slug}/patches/",
        "patch browser, filtered, next page": f"/p/{slug}/patches/?current_label={label.pk}"
                                              f"&status=unreviewed&after={first.pk}",
        "patch": f"/p/{slug}/patches/{first.pk}/",
        "patch, within a filter": f"/p/{slug}/patches/{first.pk}/?status=unreviewed",
        "review": f"/p/{slug}/review/",
        "review, audit queue": f"/p/{slug}/review/?queue=audit",
        "grid": f"/p/{slug}/review/grid/",
        "reviewers": f"/p/{slug}/reviewers/",
        "rounds": f"/p/{slug}/rounds/",
        "slide": f"/p/{slug}/slides/{whole.pk}/",
        "plot": f"/p/{slug}/plots/change_matrix.svg",
        "lazy plot": f"/p/{slug}/plots/audit_error.svg",
        "settings": f"/p/{slug}/settings/",
        "members": f"/p/{slug}/members/",
        "classes": f"/p/{slug}/classes/",
    }


def queries(client: Client, urls: dict[str, str]) -> dict[str, int]:
    counted = {}
    for name, url in urls.items():
        with CaptureQueriesContext(connection) as captured:
            response = client.get(url)
        assert response.status_code == 200, (name, response.status_code)
        counted[name] = len(captured)
    return counted


def test_every_page_makes_as_many_queries_at_ten_times_the_patches(built, users, settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}}
    project, whole, reviewers = built
    # The audit plot needs a settled patch of the audit sample: decide them all.
    rest = list(Patch.objects.filter(project=project, status=PatchStatus.UNREVIEWED))
    Review.objects.bulk_create([Review(patch=p, reviewer=users["reviewer"], patch_version=1,
                                       action=ReviewAction.CONFIRM) for p in rest])
    Patch.objects.filter(pk__in=[p.pk for p in rest]).update(status=PatchStatus.CONFIRMED)
    client = Client()
    client.force_login(users["admin"])
    urls = page_urls(project, whole)
    client.get(urls["project"])  # first request: the session, the content types
    before = queries(client, urls)

    grow(project, patches=400, slides=20, reviewed=100, reviewers=reviewers)
    assert project_counts(project).get("all") == 440
    after = queries(client, urls)
    assert after == before


def test_queue_sizes_stop_counting_at_the_cap(built):
    from annotations.stats import queue_sizes

    project, _, _ = built
    small = queue_sizes(project, cap=30)
    assert int(small["unreviewed"]) == 30 and str(small["unreviewed"]) == "30+"
    assert not queue_sizes(project, cap=1000)["unreviewed"].capped
    assert int(queue_sizes(project, cap=1000)["unreviewed"]) == Patch.objects.filter(
        project=project, status=PatchStatus.UNREVIEWED).count() == 32
    # The audit and disputed queues come from the kept counts, exactly, whatever the cap.
    from annotations.queues import queue_queryset

    Patch.objects.filter(pk__in=Patch.objects.filter(project=project).order_by("id")
                         .values("id")[:3]).update(status=PatchStatus.DISPUTED)
    sizes = queue_sizes(project, cap=1)
    for name in ("audit", "disputed"):
        assert int(sizes[name]) == queue_queryset(project, name).count(), name
        assert not sizes[name].capped
    assert int(sizes["disputed"]) == 3


def test_reviewer_figures_are_taken_again_once_reviews_change(built, users, settings):
    from annotations.dashboards import DASHBOARD_MAX_AGE, reviewer_dashboard

    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "page-queries"}}
    project, _, _ = built
    first = reviewer_dashboard(project)
    assert reviewer_dashboard(project).computed_at == first.computed_at  # nothing changed
    patch = Patch.objects.filter(project=project, status=PatchStatus.UNREVIEWED).first()
    Review.objects.create(patch=patch, reviewer=users["reviewer"], action=ReviewAction.CONFIRM,
                          patch_version=1, time_spent_ms=900)
    # Within the minute, the last figures stand (the page says as of when) ...
    assert reviewer_dashboard(project).computed_at == first.computed_at
    # ... and after it, the new review is in them.
    from django.core.cache import cache

    key = f"reviewer-dashboard:{project.pk}:{project.created_at.timestamp()}"
    stale = cache.get(key)
    cache.set(key, type(stale)(stale.rows, stale.pairs, stale.signature,
                               timezone.now() - timedelta(seconds=DASHBOARD_MAX_AGE)))
    again = reviewer_dashboard(project)
    assert again.computed_at > first.computed_at
    mine = next(r for r in again.rows if r.username == "reviewer")
    was = next(r for r in first.rows if r.username == "reviewer")
    assert mine.decisions == was.decisions + 1
