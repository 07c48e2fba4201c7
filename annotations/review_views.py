"""The review pages: one patch at a time (keyboard first) and grid mode. Both are shells
that the static JS fills through the review API, so the API is the only write path."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from annotations.access import access_project
from annotations.dashboards import reviewer_dashboard
from annotations.permissions import Act, allowed_actions
from annotations.queues import QUEUES, queue_runs
from annotations.reviewing import EXCLUDE_REASONS
from annotations.stats import queue_sizes
from inference.queries import active_model_name, active_version, crowd_quality


def _config(request: HttpRequest, project, queue: str) -> dict:
    classes = [{"id": c.id, "name": c.name, "hotkey": c.hotkey, "colour": c.colour}
               for c in project.classes.order_by("index")]
    filters = {key: request.GET[key] for key in ("current_label", "predicted_label", "slide",
                                                 "split", "proposed_label")
               if request.GET.get(key)}
    return {"project": project.slug, "queue": queue, "classes": classes, "filters": filters,
            "api": f"/api/projects/{project.slug}", "reasons": list(EXCLUDE_REASONS),
            "role": project.role_of(request.user)}


def _page(request: HttpRequest, slug: str) -> dict:
    """Context shared by both review pages; the queue falls back to one that can run."""
    project = access_project(request.user, slug, Act.REVIEW)
    model = active_model_name(project)
    queue = request.GET.get("queue", "")
    if queue not in QUEUES:
        queue = "disagreement" if model else "unreviewed"
    if not queue_runs(queue, active_version(project)):
        queue = "disagreement" if model else "unreviewed"
    return {"project": project, "queue": queue, "queues": queue_sizes(project),
            "config": _config(request, project, queue), "model": model}


def review(request: HttpRequest, slug: str) -> HttpResponse:
    return render(request, "annotations/review.html", _page(request, slug))


def review_grid(request: HttpRequest, slug: str) -> HttpResponse:
    context = _page(request, slug)
    if context["queue"] == "candidates":  # answered yes/no one at a time, with their seeds
        return redirect(f"{reverse('review', args=[slug])}?{request.GET.urlencode()}")
    return render(request, "annotations/review_grid.html",
                  {**context, "classes": context["project"].classes.order_by("index")})


def reviewers(request: HttpRequest, slug: str) -> HttpResponse:
    """Reviewer dashboard: throughput, agreement with consensus, kappa between pairs."""
    project = access_project(request.user, slug)
    dashboard = reviewer_dashboard(project)
    return render(request, "annotations/reviewers.html", {
        "project": project, "rows": dashboard.rows, "pairs": dashboard.pairs,
        "as_of": dashboard.computed_at,
        "crowd": crowd_quality(project), "can": allowed_actions(request.user, project)})
