"""The project page's similarity section (templates/inference/_similarity.html): the index,
its jobs, proposing candidates, and the prototypes' few-shot figures and typical/atypical
patches. Registered with :mod:`annotations.panels`, as the models section is."""

from __future__ import annotations

from typing import Any

from django.db.models import Count
from django.urls import reverse

from annotations.counts import project_counts
from annotations.models import LabelClass, Patch, Project
from annotations.panels import register_panel
from inference.similarity.models import Candidate, SimilarityJob
from inference.similarity.prototypes import current as current_prototypes
from inference.similarity.search import current_index

SHOTS = ("1-shot", "5-shot", "10-shot")


def _ordering(project: Project, figures: dict[str, Any]) -> list[dict[str, Any]]:
    """Per class: its most typical and most atypical patches, as thumbnails to click."""
    ordering = figures.get("ordering") or {}
    ids = {pid for lists in ordering.values() for key in ("typical", "atypical")
           for pid, _ in lists[key][:4]}
    tiles = dict(Patch.objects.filter(pk__in=ids).values_list("id", "centre_tile_id"))
    names = dict(LabelClass.objects.filter(project=project).values_list("id", "name"))
    rows = []
    for class_id, lists in ordering.items():
        def thumbs(key: str, lists: dict[str, Any] = lists) -> list[dict[str, Any]]:
            return [{"url": reverse("patch-detail", args=[project.slug, pid]),
                     "tile": reverse("tile-image", args=[tiles[pid]]), "similarity": s}
                    for pid, s in lists[key][:4] if pid in tiles]
        rows.append({"name": names.get(int(class_id), class_id),
                     "typical": thumbs("typical"), "atypical": thumbs("atypical")})
    return rows


def similarity_panel(project: Project, user: Any) -> dict[str, Any]:
    jobs = list(SimilarityJob.objects.filter(project=project).select_related("space")[:8])
    prototypes = current_prototypes(project)
    figures = prototypes.fewshot if prototypes is not None else {}
    open_candidates = dict(
        Candidate.objects.filter(project=project).exclude(state=Candidate.State.REJECTED)
        .filter(patch__current_label__isnull=True).values_list("label_id")
        .annotate(n=Count("id"))
        .values_list("label_id", "n"))
    return {
        "similarity_index": current_index(project),
        "similarity_jobs": jobs,
        "unlabelled_count": project_counts(project).get("unlabelled"),  # kept, not counted
        "candidate_classes": [
            {"id": c.pk, "name": c.name, "open": open_candidates.get(c.pk, 0)}
            for c in project.classes.order_by("index")],
        "prototypes": prototypes,
        "fewshot_rows": [{"shots": key, **figures[key]} for key in SHOTS if key in figures],
        "fewshot": figures,
        "retrieval_rows": [(k.replace("recall", "Recall"), v)
                           for k, v in (figures.get("retrieval") or {}).items()],
        "prototype_ordering": _ordering(project, figures),
        "jobs_active": any(j.is_live for j in jobs),
    }


def register_panels() -> None:
    register_panel("inference/_similarity.html", similarity_panel, order=60)
