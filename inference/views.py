"""Pages' actions for models: start prediction, training or a round, activate a version,
set the retraining policy."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotations.access import access_project
from annotations.permissions import Act, allowed_actions
from annotations.plots import build
from inference.actions import (
    JobError,
    activate,
    set_retrain_policy,
    start_predict,
    start_round,
    start_train,
)
from inference.history import rounds
from inference.models import InferenceJob, ModelVersion
from inference.options import TrainOptions
from inference.plots import HISTORY_PLOTS
from inference.rounds import policy_of, settled_count


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


def _optional_int(request: HttpRequest, name: str, low: int, high: int) -> int | None:
    """Blank means "choose for the project's size"."""
    if not request.POST.get(name, "").strip():
        return None
    return _int(request, name, low, low, high)


@require_POST
def start_train_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.RUN_MODELS)
    options = TrainOptions(epochs=_optional_int(request, "epochs", 1, 200),
                           folds=_int(request, "folds", 5, 2, 20),
                           head="centre" if request.POST.get("head") == "centre" else "context",
                           force_activate=request.POST.get("force_activate") == "on")
    try:
        start_train(project, options, user=request.user)
    except JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Training queued; its progress shows below.")
    return redirect("project-detail", slug=project.slug)


@require_POST
def start_round_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.RUN_MODELS)
    try:
        start_round(project, user=request.user)
    except JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Retraining round queued; its progress shows below.")
    target = "model-rounds" if request.POST.get("next") == "rounds" else "project-detail"
    return redirect(target, slug=project.slug)


@require_POST
def retrain_policy_view(request: HttpRequest, slug: str) -> HttpResponse:
    project = access_project(request.user, slug, Act.MANAGE_SETTINGS)
    every = _int(request, "every_settled", -1, -1, 10_000_000)
    try:
        set_retrain_policy(project, every, request.user)
    except JobError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"A round runs after every {every} settled decisions."
                         if every else "Rounds run only from the button.")
    return redirect("model-rounds", slug=project.slug)


@require_POST
def activate_view(request: HttpRequest, slug: str, version_id: int) -> HttpResponse:
    project = access_project(request.user, slug, Act.ACTIVATE_MODEL)
    version = ModelVersion.objects.filter(project=project, pk=version_id).first()
    if version is None:
        raise Http404("No such model version")
    activate(project, version, request.user)
    messages.success(request, f"{version.name} is now the active model.")
    return redirect("project-detail", slug=project.slug)


def rounds_page(request: HttpRequest, slug: str) -> HttpResponse:
    """The retraining rounds' history with its plots, the policy and the round button."""
    project = access_project(request.user, slug)
    history = rounds(project)
    plots = {name: plot for name in HISTORY_PLOTS if (plot := build(project, name)) is not None}
    return render(request, "inference/rounds.html", {
        "project": project, "can": allowed_actions(request.user, project),
        "rounds": list(reversed(history)), "plots": plots, "policy": policy_of(project),
        "settled": settled_count(project),
        "jobs": list(InferenceJob.objects.filter(project=project,
                                                 kind=InferenceJob.Kind.ROUND)[:5]),
    })
