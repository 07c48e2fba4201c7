"""The models section of the project page (templates/inference/_models.html), registered
with :mod:`annotations.panels` so the project page need not import this app."""

from __future__ import annotations

from typing import Any

from annotations.models import Project
from annotations.panels import register_panel
from inference.models import InferenceJob, ModelVersion


def model_panel(project: Project, user) -> dict[str, Any]:
    jobs = list(InferenceJob.objects.filter(project=project)
                .select_related("model_version", "space")[:10])
    versions = list(ModelVersion.objects.filter(project=project).select_related("space")[:20])
    return {
        "model_versions": versions,
        "active_model": next((v for v in versions if v.is_active), None),
        "inference_jobs": jobs,
        "jobs_active": any(j.is_live for j in jobs),
    }


def register_panels() -> None:
    register_panel("inference/_models.html", model_panel, order=50)
