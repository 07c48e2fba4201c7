"""Pages' actions for models: start prediction or training, activate a version.

The models section of the project page is rendered from :func:`model_panel`.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotations.access import access_project
from annotations.models import Project, Role
from inference.jobs import JobError, start_predict, start_train
from inference.modeling import UnknownBackboneError, WeightLoadError
from inference.models import InferenceJob, ModelVersion
from inference.registry import activate_version
from inference.training import TrainOptions


def model_panel(project: Project) -> dict:
    """Context for templates/inference/_models.html."""
    jobs = list(InferenceJob.objects.filter(project=project)
                .select_related("model_version", "space")[:10])
    versions = list(ModelVersion.objects.filter(project=project).select_related("space")[:20])
    return {
        "model_versions": versions,
        "active_model": next((v for v in versions if v.is_active), None),
        "inference_jobs": jobs,
        "inference_active": any(j.is_active for j in jobs),
    }


def _int(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.POST.get(name, default))
    except ValueError:
        value = default
    return max(low, min(high, value))


@require_POST
def start_predict_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, role=Role.ADMIN)
    try:
        start_predict(project, model=request.POST.get("model") or None, user=request.user)
    except JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Prediction queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


@require_POST
def start_train_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, role=Role.ADMIN)
    options = TrainOptions(epochs=_int(request, "epochs", 10, 1, 200),
                           folds=_int(request, "folds", 5, 2, 20),
                           head="centre" if request.POST.get("head") == "centre" else "context")
    try:
        start_train(project, options, user=request.user)
    except (JobError, UnknownBackboneError, WeightLoadError) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Training queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


@require_POST
def activate_view(request: HttpRequest, slug: str, version_id: int) -> HttpResponse:
    project = access_project(request.user, slug, role=Role.ADMIN)
    version = ModelVersion.objects.filter(project=project, pk=version_id).first()
    if version is None:
        raise Http404("No such model version")
    activate_version(version)
    messages.success(request, f"{version.name} is now the active model.")
    return redirect("project-detail", slug=project.slug)
