"""Actions for models: start prediction or training, activate a version, and the job type.

Each checks the user's role, records the job and enqueues its first step when the
transaction commits. Nothing here builds a backbone or imports torch: resolving the
embedding space of a new backbone (building it, hashing its weights) is the first step's
work, in a worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from annotations import lifecycle
from annotations.models import Project
from annotations.permissions import Act, require
from inference import tasks
from inference.models import EmbeddingSpace, InferenceJob, ModelVersion, RetrainPolicy
from inference.options import TrainOptions
from inference.queries import active_version
from inference.queue_scores import activate_version
from inference.rounds import TRAINING_KINDS, settled_count

if TYPE_CHECKING:
    from annotations.permissions import AnyUser


class JobError(ValueError):
    """A job cannot be started as asked (no model, unknown name, ...)."""


def start_predict(project: Project, *, model: str | None = None, user: AnyUser | None = None,
                  check: bool = True) -> InferenceJob:
    """Queue predictions of every patch by ``model`` (default: the active version)."""
    if check:
        require(user, project, Act.RUN_MODELS)
    if model:
        version = ModelVersion.objects.filter(project=project, name=model).first()
        if version is None:
            names = ", ".join(ModelVersion.objects.filter(project=project)
                              .values_list("name", flat=True)) or "none"
            raise JobError(f"project {project.slug!r} has no model {model!r} (has: {names})")
    else:
        version = active_version(project)
        if version is None:
            raise JobError(f"project {project.slug!r} has no active model: register one with "
                           "register_model or train one with train_head")
    return _queue(project, InferenceJob.Kind.PREDICT, version.space, version, {}, user)


def start_train(
    project: Project, options: TrainOptions, *, backbone: str | None = None,
    weights: str | None = None, user: AnyUser | None = None, check: bool = True,
) -> InferenceJob:
    """Queue embedding (if needed) and training of a new head.

    Without a backbone the active version's space is reused, else the configured default
    (``SPIDER_DEFAULT_BACKBONE``), so retraining never re-embeds a project. A named backbone
    is resolved by the worker. ``check=False`` is for commands run by the server's operator.
    """
    if check:
        require(user, project, Act.RUN_MODELS)
    space = None
    job_options: dict[str, Any] = {"train": options.as_json()}
    current = active_version(project) if not backbone else None
    if current is not None:
        space = current.space
    else:
        job_options["backbone"] = backbone or settings.SPIDER_DEFAULT_BACKBONE
        job_options["backbone_weights"] = (weights if backbone else
                                           settings.SPIDER_DEFAULT_BACKBONE_WEIGHTS) or ""
    return _queue(project, InferenceJob.Kind.TRAIN, space, None, job_options, user)


def start_round(project: Project, *, user: AnyUser | None = None, trigger: str = "button",
                check: bool = True) -> InferenceJob:
    """Queue a retraining round: train on the current labels with the defaults for the
    project's size, score out of fold, re-rank, activate unless worse. Needs a model (its
    embedding space) to retrain; one training job (train or round) at a time."""
    if check:
        require(user, project, Act.RUN_MODELS)
    current = active_version(project)
    if current is None:
        raise JobError(f"project {project.slug!r} has no active model to retrain: train one "
                       "first")
    options = {"train": TrainOptions(name=_round_name(project)).as_json(), "trigger": trigger}
    return _queue(project, InferenceJob.Kind.ROUND, current.space, None, options, user)


def _round_name(project: Project) -> str:
    done = InferenceJob.objects.filter(project=project, kind=InferenceJob.Kind.ROUND).count()
    return f"round-{done + 1}-{timezone.now():%Y%m%d-%H%M%S}"


def set_retrain_policy(project: Project, every_settled: int, user: AnyUser) -> RetrainPolicy:
    """Retrain after every ``every_settled`` settled decisions (0: only from the button),
    counting from now (project admins)."""
    editor = require(user, project, Act.MANAGE_SETTINGS)
    if not 0 <= every_settled <= 1_000_000:
        raise JobError("retrain every N settled decisions: N must be 0 (off) to 1,000,000")
    with transaction.atomic():
        policy, _ = RetrainPolicy.objects.select_for_update().get_or_create(project=project)
        policy.every_settled = every_settled
        policy.settled_at_last_round = settled_count(project)
        policy.updated_by = editor
        policy.save()
    return policy


def _queue(project: Project, kind: str, space: EmbeddingSpace | None,
           version: ModelVersion | None, options: dict[str, Any],
           user: AnyUser | None) -> InferenceJob:
    same: dict[str, Any] = ({"kind__in": TRAINING_KINDS} if kind in TRAINING_KINDS
                            else {"kind": kind})
    with transaction.atomic():
        if (twin := lifecycle.live_twin(InferenceJob, project, **same)) is not None:
            raise JobError(f"{twin.kind} job {twin.pk} is already {twin.state}: wait for it, or "
                           f"{'resume' if twin.is_stalled else 'cancel'} it first")
        job = InferenceJob.objects.create(
            project=project, kind=kind, space=space, model_version=version, options=options,
            created_by=user if user is not None and user.is_authenticated else None,
            tiles_total=project.tiles.count(), patches_total=project.patches.count())
        transaction.on_commit(lambda: tasks.embed_step.delay(job.pk))
    return job


def activate(project: Project, version: ModelVersion, user: AnyUser) -> ModelVersion:
    """Make ``version`` the one the queues and the review page use (project admins): the
    explicit way past the guard that kept a worse version inactive, recorded on it."""
    editor = require(user, project, Act.ACTIVATE_MODEL)
    activate_version(version)
    if version.training.get("activation", {}).get("activated") is False:
        record = {**version.training["activation"], "activated": True,
                  "reason": f"activated by {editor.get_username()} "
                            f"({version.training['activation'].get('reason', '')})"}
        version.training = {**version.training, "activation": record}
        ModelVersion.objects.filter(pk=version.pk).update(training=version.training)
    return version


def register_job_types() -> None:
    """InferenceConfig.ready registers the job model this app owns with the life cycle."""
    lifecycle.register_job_type(InferenceJob.job_type, InferenceJob, tasks.embed_step.delay)
