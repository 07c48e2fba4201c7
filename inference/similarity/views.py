"""The project page's similarity forms: start an index, prototypes or candidates job."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotations.access import access_project
from inference.similarity.actions import (
    SimilarityJobError,
    start_candidates,
    start_index,
    start_prototypes,
)


def parse_ids(raw: str) -> list[int]:
    """"12, 15 18" -> [12, 15, 18]; anything else is a ValueError naming it."""
    out = []
    for part in raw.replace(",", " ").split():
        if not part.isdigit():
            raise ValueError(f"{part!r} is not a patch id")
        out.append(int(part))
    return out


@require_POST
def start_view(request: HttpRequest, slug: str, kind: str) -> HttpResponse:
    project = access_project(request.user, slug)
    try:
        if kind == "index":
            start_index(project, request.user)
        elif kind == "prototypes":
            start_prototypes(project, request.user)
        elif kind == "candidates":
            start_candidates(project, int(request.POST.get("label") or 0),
                             seeds=parse_ids(request.POST.get("seeds", "")),
                             k=int(request.POST.get("k") or 50), user=request.user)
        else:
            raise Http404(f"no similarity job {kind!r}")
    except PermissionDenied:
        raise
    except (SimilarityJobError, ValueError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Queued; its progress shows in the similarity section.")
    return redirect("project-detail", slug=project.slug)
