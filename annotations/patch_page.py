"""What the patch page adds around the patch in context: the model's opinion, the
neighbours in the patch browser's current filter, and the config that lets a reviewer
decide from the page (static/annotations/patch_review.js, through the review API)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.urls import reverse

from annotations.filters import PatchFilterSet, within_project_ids
from annotations.models import Patch, Project
from annotations.permissions import Act, can
from annotations.reviewing import EXCLUDE_REASONS
from inference.queries import label_issue, opinions

FILTER_KEYS = tuple(PatchFilterSet.base_filters)


def browser_query(request: HttpRequest) -> str:
    """The patch browser's filter, as the query string to carry from patch to patch."""
    query = request.GET.copy()
    for key in list(query):
        if key not in FILTER_KEYS:
            query.pop(key)
    return query.urlencode()


def neighbours(request: HttpRequest, project: Project, patch: Patch) -> tuple[int | None,
                                                                               int | None]:
    """(previous, next) patch ids in the browser's order (by id) under the same filter."""
    filterset = PatchFilterSet(request.GET, queryset=Patch.objects.filter(project=project),
                               project=project)
    patches = within_project_ids(filterset.qs, project)
    before = (patches.filter(id__lt=patch.pk).order_by("-id")
              .values_list("id", flat=True).first())
    after = patches.filter(id__gt=patch.pk).order_by("id").values_list("id", flat=True).first()
    return before, after


def patch_page_context(request: HttpRequest, project: Project, patch: Patch) -> dict[str, Any]:
    query = browser_query(request)
    suffix = f"?{query}" if query else ""
    before, after = neighbours(request, project, patch)

    def url(pk: int | None) -> str | None:
        return None if pk is None else reverse("patch-detail", args=[project.slug, pk]) + suffix

    opinion = opinions(project, [patch.pk]).get(patch.pk)
    current = patch.current_label.name if patch.current_label else None
    # An unlabelled patch has no label to disagree with: the page says what the model says.
    disagrees = opinion is not None and current is not None and opinion.predicted != current
    classes = list(project.classes.order_by("index"))
    suggested = next((c.pk for c in classes if opinion and c.name == opinion.predicted), None)
    may_review = can(request.user, project, Act.REVIEW)
    return {
        "opinion": opinion,
        "opinion_bars": [{"name": n, "p": p, "percent": f"{p * 100:.1f}",
                          "width": f"{max(0.5, p * 100):.1f}"}
                         for n, p in (opinion.top if opinion else [])],
        "opinion_percent": f"{opinion.top[0][1] * 100:.0f}" if opinion and opinion.top else "",
        "model_disagrees": disagrees,
        "label_issue": label_issue(project, patch.pk),
        "suggested_class": suggested,
        "classes": classes,
        "may_review": may_review,
        "previous_url": url(before),
        "next_url": url(after),
        "list_url": reverse("patch-list", args=[project.slug]) + suffix,
        "filtered": bool(query),
        "reasons": EXCLUDE_REASONS,
        "patch_config": {
            "api": f"/api/projects/{project.slug}", "patch": patch.pk, "version": patch.version,
            "current_label": patch.current_label_id, "suggested": suggested,
            "classes": [{"id": c.pk, "name": c.name, "hotkey": c.hotkey} for c in classes],
            "reasons": list(EXCLUDE_REASONS), "may_review": may_review,
            "model": ({"version": opinion.model_version,
                       "top": [{"name": n, "p": p} for n, p in opinion.top]}
                      if opinion else None),
            "previous": url(before), "next": url(after),
        },
    }
