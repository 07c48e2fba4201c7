"""Pages' actions for models: start prediction or training, activate a version."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotations.access import access_project
from annotations.permissions import Act
from inference.actions import JobError, activate, start_predict, start_train
from inference.models import ModelVersion
from inference.options import TrainOptions


def _int(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.POST.get(name, default))
    except ValueError:
        value = default
    return max(low, min(high, value))


@require_POST
def start_predict_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.RUN_MODELS)
    try:
        start_predict(project, model=request.POST.get("model") or None, user=request.user)
    except JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Prediction queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


@require_POST
def start_train_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.RUN_MODELS)
    options = TrainOptions(epochs=_int(request, "epochs", 10, 1, 200),
                           folds=_int(request, "folds", 5, 2, 20),
                           head="centre" if request.POST.get("head") == "centre" else "context")
    try:
        start_train(project, options, user=request.user)
    except JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Training queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


@require_POST
def activate_view(request: HttpRequest, slug: str, version_id: int) -> HttpResponse:
    project = access_project(request.user, slug, Act.ACTIVATE_MODEL)
    version = ModelVersion.objects.filter(project=project, pk=version_id).first()
    if version is None:
        raise Http404("No such model version")
    activate(project, version, request.user)
    messages.success(request, f"{version.name} is now the active model.")
    return redirect("project-detail", slug=project.slug)
