"""Server-rendered pages: project list and page, patch browser, patch in context, members."""

from __future__ import annotations

import logging
import mimetypes

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotations.access import access_patch, access_project, access_tile
from annotations.actions import (
    add_class,
    cancel_job,
    find_job,
    remove_membership,
    resume_job,
    set_membership,
    start_import,
    update_class,
)
from annotations.counts import Counts, project_counts, slide_patch_counts
from annotations.dashboards import change_matrix
from annotations.filters import PatchFilterSet, within_project_ids
from annotations.models import Membership, Patch, Project, Role, Slide
from annotations.models.patches import CENTRE_INDEX
from annotations.panels import panels_context
from annotations.patch_page import patch_page_context
from annotations.permissions import Act, allowed_actions, visible_reviews
from annotations.plots import BUILDERS, Plot, build
from annotations.reviewing import ReviewSettings, update_settings
from annotations.stats import (
    audit_estimate,
    class_counts,
    patch_count,
    queue_sizes,
    slide_counts,
    split_counts,
    status_counts,
)
from annotations.tilestore import open_tile

log = logging.getLogger(__name__)

PAGE_SIZE = 60


def project_list(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.restrict(request.user).order_by("name")
    return render(request, "annotations/project_list.html", {"projects": projects})


def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """The project's counts, queues, panels and jobs: a fixed number of queries on kept
    counts and indexes, whatever the number of patches (tests/test_page_queries.py)."""
    project = access_project(request.user, slug)
    counts = project_counts(project)
    n_slides, top_slides = slide_counts(project)
    jobs = list(project.import_jobs.all()[:10])
    exports = list(project.export_jobs.select_related("created_by")[:10])
    panels = panels_context(project, request.user)
    return render(request, "annotations/project_detail.html", {
        **review_summary(project, counts),
        **panels,
        "project": project,
        "role": project.role_of(request.user),
        "can": allowed_actions(request.user, project),
        "classes": class_counts(project, counts),
        "statuses": status_counts(project, counts),
        "splits": split_counts(project, counts),
        "n_slides": n_slides,
        "top_slides": top_slides,
        "whole_slides": whole_slides(project),
        "n_patches": patch_count(project, counts),
        "jobs": jobs,
        "export_jobs": exports,
        "jobs_active": any(j.is_live for j in [*jobs, *exports]) or panels["panels_active"],
        "plots": page_plots(project),
    })


# Plots whose numbers grow with the review history: the page fetches them after it shows
# (static/annotations/plots.js, from /p/<slug>/plots/<name>.svg) instead of drawing them.
LAZY_PLOTS = ("audit_error",)


def page_plots(project: Project) -> dict[str, Plot]:
    """The registered plots drawn into the project page (not the lazy ones)."""
    found = {name: build(project, name) for name in BUILDERS if name not in LAZY_PLOTS}
    return {name: plot for name, plot in found.items() if plot is not None}


def review_summary(project: Project, counts: Counts) -> dict:
    """Context for templates/annotations/_review_summary.html on the project page."""
    names, matrix = change_matrix(project, counts)
    return {"queue_sizes": queue_sizes(project, counts=counts),
            "audit": audit_estimate(project, counts),
            "change_names": names, "change_rows": list(zip(names, matrix, strict=True))}


def whole_slides(project: Project) -> list[Slide]:
    """The project's whole slides (few, unlike imported slide ids) with patch counts."""
    slides = list(project.slides.exclude(source_file="").order_by("name")[:100])
    counts = slide_patch_counts(project, [s.pk for s in slides]) if slides else {}
    for slide in slides:
        slide.n = counts.get(slide.pk, 0)  # type: ignore[attr-defined]
    return slides


@require_http_methods(["POST"])
def control_job(request: HttpRequest, slug: str, job_type: str, job_id: int,
                operation: str) -> HttpResponse:
    """Cancel or resume a job of any type from the project page."""
    project = access_project(request.user, slug, Act.CONTROL_JOBS)
    job = find_job(request.user, project, job_type, job_id)
    run = {"cancel": cancel_job, "resume": resume_job}.get(operation)
    if run is None:
        raise Http404("No such operation")
    try:
        run(request.user, project, job)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        done = "cancelled" if operation == "cancel" else "queued again"
        messages.success(request, f"{job.job_type.capitalize()} job {job.pk} {done}.")
    return redirect("project-detail", slug=project.slug)


def patch_list(request: HttpRequest, slug: str) -> HttpResponse:
    """Keyset-paged patch browser: ``?after=<id>`` continues after the last patch shown."""
    project = access_project(request.user, slug)
    filterset = PatchFilterSet(request.GET, queryset=Patch.objects.filter(project=project),
                               project=project)
    patches = within_project_ids(filterset.qs, project).select_related(
        "current_label", "original_label", "slide")
    after = request.GET.get("after", "")
    if after.isdigit():
        patches = patches.filter(id__gt=int(after))
    if filterset.is_bound and not filterset.is_valid():
        # django-filter skips a field it cannot read, which showed every patch as if they
        # matched: show none, and say which filter to fix.
        patches = patches.none()
    page = list(patches.order_by("id")[: PAGE_SIZE + 1])
    has_next = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    query = request.GET.copy()
    query.pop("after", None)
    return render(request, "annotations/patch_list.html", {
        "project": project, "filter": filterset, "patches": page,
        "can": allowed_actions(request.user, project),
        "next_after": page[-1].id if has_next else None,
        "query": query.urlencode(), "is_first_page": not after,
    })


def patch_detail(request: HttpRequest, slug: str, patch_id: int) -> HttpResponse:
    project = access_project(request.user, slug)
    patch = access_patch(request.user, project, patch_id)
    cells = [{"tile": tile, "centre": i == CENTRE_INDEX, "row": i // 5, "col": i % 5}
             for i, tile in enumerate(patch.grid)]
    history = visible_reviews(request.user, project, patch.reviews.select_related(
        "reviewer", "from_label", "to_label").order_by("id"))
    return render(request, "annotations/patch_detail.html", {
        "project": project, "patch": patch, "cells": cells, "history": history,
        **patch_page_context(request, project, patch),
        "can": allowed_actions(request.user, project),
    })


def _number(text: str, kind: type[int] | type[float], name: str) -> int | float:
    try:
        return kind(text.strip().rstrip("%").strip())
    except ValueError:
        raise ValidationError(f"{name} must be a number, not {text!r}.") from None


@require_http_methods(["GET", "POST"])
def project_settings(request: HttpRequest, slug: str) -> HttpResponse:
    """Reads required, the audit sample (as a percent) and the lease time, with who changed
    what from what to what, when."""
    project = access_project(request.user, slug, Act.MANAGE_SETTINGS)
    if request.method == "POST":
        current = ReviewSettings.of(project)
        try:
            new = ReviewSettings(
                int(_number(request.POST.get("reviews_required", str(current.reviews_required)),
                            int, "Reads required")),
                _number(request.POST.get("audit_percent", str(current.audit_fraction * 100)),
                        float, "The audit sample") / 100,
                int(_number(request.POST.get("lease_seconds", str(current.lease_seconds)),
                            int, "The lease time")))
            changed = update_settings(project, request.user, new)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, f"Saved: {', '.join(c.field for c in changed)}."
                             if changed else "Nothing changed.")
        return redirect("project-settings", slug=project.slug)
    return render(request, "annotations/settings.html", {
        "project": project, "can": allowed_actions(request.user, project),
        "audit_percent": project.audit_percent.rstrip("%"),
        "changes": project.setting_changes.select_related("changed_by")[:200],
    })


# Raster types only: an SVG is a document that may hold scripts.
TILE_TYPES = {"image/png", "image/jpeg", "image/tiff", "image/gif", "image/bmp", "image/webp"}


def tile_content_type(file: str) -> str:
    """A raster image type from the file's extension, else ``application/octet-stream``. A
    linked tile keeps the name the dataset gave it, and the import checked its bytes, not its
    name: an image named ``x.html``, ``x.svg`` or ``x.js`` (a GIF can be valid JavaScript
    too) must not be served as a page or a script of this site. Browsers still show it in an
    <img>."""
    guessed = mimetypes.guess_type(file)[0]
    return guessed if guessed in TILE_TYPES else "application/octet-stream"


def tile_image(request: HttpRequest, tile_id: int) -> FileResponse:
    """A tile's bytes; content-addressed, so browsers may cache it for good."""
    tile = access_tile(request.user, tile_id)
    try:
        handle = open_tile(tile)
    except OSError as exc:  # a linked file moved, deleted or replaced since the import
        log.warning("tile %s: cannot read %s: %s", tile.pk, tile.file, exc.strerror or exc)
        raise Http404("this tile's image file cannot be read") from exc
    response = FileResponse(handle, content_type=tile_content_type(tile.file))
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    response["ETag"] = f'"{tile.sha256}"'
    return response


@require_http_methods(["POST"])
def start_import_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.IMPORT)
    options = {"organ": request.POST.get("organ") or None,
               "link": request.POST.get("link") == "on",
               "strict": request.POST.get("strict") == "on",
               "mpp": request.POST.get("mpp"), "split": request.POST.get("split")}
    try:
        start_import(project, request.user, request.POST.get("kind", "spider"),
                     request.POST.get("path", ""), options)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, "Import queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


@require_http_methods(["GET", "POST"])
def classes(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.MANAGE_CLASSES)
    if request.method == "POST":
        try:
            if request.POST.get("id"):
                raw_id = request.POST["id"]
                label = (project.classes.filter(pk=int(raw_id)).first()
                         if raw_id.isascii() and raw_id.isdigit() and len(raw_id) < 19 else None)
                if label is None:
                    raise Http404("No such class")
                update_class(label, request.POST.get("colour", ""),
                             request.POST.get("hotkey", ""))
            else:
                add_class(project, request.POST.get("name", ""),
                          request.POST.get("colour", "#888888"), request.POST.get("hotkey", ""))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, "Saved.")
        return redirect("classes", slug=project.slug)
    return render(request, "annotations/classes.html", {
        "project": project, "classes": project.classes.order_by("index"),
        "can": allowed_actions(request.user, project)})


@require_http_methods(["GET", "POST"])
def members(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.MANAGE_MEMBERS)
    if request.method == "POST":
        User = get_user_model()
        username = request.POST.get("username", "")
        # PostgreSQL text cannot hold NUL: no user has such a name (else a 500 from the query)
        user = (User.objects.filter(username=username).first() if "\x00" not in username
                else None)
        if user is None:
            messages.error(request, f"No user named {username!r}.")
        elif request.POST.get("action") == "remove":
            if user == request.user:
                messages.error(request, "You cannot remove yourself.")
            else:
                try:
                    remove_membership(project, user)
                except ValidationError as exc:
                    messages.error(request, " ".join(exc.messages))
                else:
                    messages.success(request, f"{user.username} removed.")
        else:
            role = request.POST.get("role", "")
            if role not in Role.values:
                messages.error(request, f"Unknown role {role!r}.")
            else:
                try:
                    set_membership(project, user, role)
                except ValidationError as exc:
                    messages.error(request, " ".join(exc.messages))
                else:
                    messages.success(request, f"{user.username} is now {role}.")
        return redirect("members", slug=project.slug)
    memberships = Membership.objects.filter(project=project).select_related("user") \
        .order_by("user__username")
    return render(request, "annotations/members.html", {
        "project": project, "memberships": memberships, "roles": Role.choices,
        "can": allowed_actions(request.user, project)})
