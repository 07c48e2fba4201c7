"""Each project plot as a downloadable SVG file (the project page shows them inline)."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse

from annotations.access import access_project
from annotations.plots import build


def plot_svg(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    project = access_project(request.user, slug)
    plot = build(project, name)
    if plot is None:
        raise Http404("No such plot, or nothing to plot yet")
    response = HttpResponse('<?xml version="1.0" encoding="UTF-8"?>\n' + plot.svg,
                            content_type="image/svg+xml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{project.slug}-{name}.svg"'
    # Opened on its own, the file may not run anything (it has no script anyway).
    response["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'"
    response["Cache-Control"] = "private, no-cache"
    return response
