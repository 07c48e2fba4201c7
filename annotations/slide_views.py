"""The slide page: a whole slide in OpenSeadragon with the model's heatmap over it.

Deep Zoom tiles come from the slide file through :mod:`annotations.deepzoom`, members only
(like every tile); the browser caches them, since a slide file never changes under one
quickhash. The heatmap and metrics come from the API (``.../slides/<id>/heatmap/``).
"""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotations import deepzoom
from annotations.access import access_project
from annotations.models import Project, Slide
from annotations.permissions import allowed_actions
from annotations.slide_maps import metric_options, slide_map, tissue_metrics


def whole_slide(project: Project, slide_id: int) -> Slide:
    slide = Slide.objects.filter(project=project, pk=slide_id).exclude(source_file="").first()
    if slide is None:
        raise Http404("No such whole slide")
    return slide


@require_GET
def slide_detail(request: HttpRequest, slug: str, slide_id: int) -> HttpResponse:
    project = access_project(request.user, slug)
    slide = whole_slide(project, slide_id)
    try:
        threshold, min_cells = metric_options(request.GET)
    except ValueError as exc:
        messages.error(request, str(exc))
        threshold, min_cells = metric_options({})
    metrics = tissue_metrics(slide_map(slide), threshold=threshold, min_cells=min_cells)
    return render(request, "annotations/slide_detail.html", {
        "project": project, "slide": slide, "metrics": metrics,
        "can": allowed_actions(request.user, project),
        "cols": slide.grid_shape[0], "rows": slide.grid_shape[1],
    })


def _cached(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = f"private, max-age={settings.SPIDER_SLIDE_DZI_CACHE_SECONDS}"
    return response


@require_GET
def slide_dzi(request: HttpRequest, slug: str, slide_id: int) -> HttpResponse:
    slide = whole_slide(access_project(request.user, slug), slide_id)
    try:
        xml = deepzoom.dzi_xml(slide)
    except deepzoom.SlideFileMissing as exc:
        raise Http404(str(exc)) from None
    return _cached(HttpResponse(xml, content_type="application/xml"))


@require_GET
def slide_tile(request: HttpRequest, slug: str, slide_id: int, level: int, col: int,
               row: int) -> HttpResponse:
    slide = whole_slide(access_project(request.user, slug), slide_id)
    etag = f'"{slide.quickhash or slide.pk}-{level}-{col}-{row}"'
    if request.headers.get("If-None-Match") == etag:
        return _cached(HttpResponse(status=304))
    try:
        data = deepzoom.tile_jpeg(slide, level, col, row)
    except deepzoom.SlideFileMissing as exc:
        raise Http404(str(exc)) from None
    if data is None:
        raise Http404("No such tile")
    response = _cached(HttpResponse(data, content_type="image/jpeg"))
    response["ETag"] = etag
    return response
