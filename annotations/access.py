"""Fetch-and-authorise helpers: one per object type, used by pages and API alike.

A user who is not a member of a project gets 404 for it and everything in it, so the
existence of other projects is never revealed; a member without the needed role gets 403.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.http import Http404

from annotations.models import Membership, Patch, Project, Tile
from annotations.permissions import Act, require
from annotations.prepared import columns, first_instances


def access_project(user, slug: str, act: Act = Act.VIEW) -> Project:
    """The project if ``user`` may see it (404 otherwise: its existence is not revealed),
    checked for ``act`` in the authorisation map (403). One query: the membership with its
    project."""
    if not user.is_authenticated:
        raise Http404("No such project")
    if user.is_superuser:
        project = Project.objects.filter(slug=slug).first()
    else:
        membership = _membership(user.pk, slug)
        project = membership.project if membership else None
        if membership is not None and project is not None:
            project.__dict__["_roles"] = {user.pk: membership.role}
    if project is None:
        raise Http404("No such project")
    require(user, project, act)
    return project


def _membership(user_id: int, slug: str) -> Membership | None:
    """The user's membership of the project ``slug``, with the project, by a statement
    compiled once: every API call asks, and compiling it was a tenth of the review API's
    Python time under load (bench/review_bench.py --profile)."""
    def build(user: int, slug: str) -> QuerySet[Membership, tuple[Any, ...]]:
        return (Membership.objects.filter(project__slug=slug, user_id=user)
                .values_list(*columns(Membership), *columns(Project, "project__"))[:1])

    found = first_instances("membership by slug", build, (Membership, Project),
                            user=user_id, slug=slug)
    if found is None:
        return None
    membership: Membership = found[0]
    membership.project = found[1]
    return membership


def access_patch(user, project: Project, patch_id: int) -> Patch:
    patch = (Patch.objects.filter(project=project, pk=patch_id)
             .select_related("slide", "original_label", "current_label", "centre_tile").first())
    if patch is None:
        raise Http404("No such patch")
    return patch


def access_tile(user, tile_id: int) -> Tile:
    tile = Tile.objects.filter(pk=tile_id, project__in=Project.objects.restrict(user)).first()
    if tile is None:
        raise Http404("No such tile")
    return tile
