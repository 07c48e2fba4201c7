"""Counts shown on the project page and returned by the API (grouped in SQL, on indexes)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count

from annotations.models import Patch, PatchStatus, Project


@dataclass
class ClassCount:
    id: int
    index: int
    name: str
    colour: str
    hotkey: str
    original: int
    current: int


def class_counts(project: Project) -> list[ClassCount]:
    patches = Patch.objects.filter(project=project)
    original = dict(patches.values_list("original_label").annotate(n=Count("id"))
                    .values_list("original_label", "n"))
    current = dict(patches.values_list("current_label").annotate(n=Count("id"))
                   .values_list("current_label", "n"))
    return [ClassCount(c.id, c.index, c.name, c.colour, c.hotkey, original.get(c.id, 0),
                       current.get(c.id, 0))
            for c in project.classes.order_by("index")]


def status_counts(project: Project) -> dict[str, int]:
    found = dict(Patch.objects.filter(project=project).values_list("status")
                 .annotate(n=Count("id")).values_list("status", "n"))
    return {status.label: found.get(status.value, 0) for status in PatchStatus}


def split_counts(project: Project) -> dict[str, int]:
    found = dict(Patch.objects.filter(project=project).values_list("split")
                 .annotate(n=Count("id")).values_list("split", "n"))
    return {(split or "none"): n for split, n in sorted(found.items())}


def slide_counts(project: Project, limit: int = 25) -> tuple[int, list[dict]]:
    """(number of slides, the ``limit`` slides with most patches)."""
    top = list(Patch.objects.filter(project=project).values("slide_id", "slide__name")
               .annotate(n=Count("id")).order_by("-n", "slide__name")[:limit])
    return project.slides.count(), top
