"""Inference jobs: queue them, and advance them one bounded, idempotent step at a time.

A job runs as a chain of Celery steps. Each step works for at most
``SPIDER_TASK_STEP_SECONDS`` on claimed chunks (see :mod:`inference.embedding`), then queues
the next step. Nothing in a message says how far the job got: every step asks the database
what is still missing, so a step redelivered after its worker died (``acks_late``) simply
carries on, and a duplicate step finds nothing left to claim.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from annotations.models import Patch, Project
from inference.embedding import embed_chunk, missing_tiles
from inference.models import EmbeddingSpace, InferenceJob, ModelVersion
from inference.predicting import predict_chunk, unpredicted_patches
from inference.queries import active_version
from inference.registry import get_space, load_head
from inference.training import TrainOptions, train_version

log = logging.getLogger(__name__)


class JobError(ValueError):
    """A job cannot be started as asked (no model, unknown name, ...)."""


def start_predict(project: Project, *, model: str | None = None, user=None) -> InferenceJob:
    """Queue predictions of every patch by ``model`` (default: the active version)."""
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
    weights: str | None = None, user=None,
) -> InferenceJob:
    """Queue embedding (if needed) and training of a new head on ``backbone``'s space.

    Without a backbone the active version's space is reused, else the configured default
    (``SPIDER_DEFAULT_BACKBONE``), so retraining never re-embeds a project.
    """
    if backbone:
        space = get_space(backbone, weights)
    elif (current := active_version(project)) is not None:
        space = current.space
    else:
        space = get_space(settings.SPIDER_DEFAULT_BACKBONE,
                          settings.SPIDER_DEFAULT_BACKBONE_WEIGHTS or None)
    return _queue(project, InferenceJob.Kind.TRAIN, space, None, vars(options), user)


def _queue(project: Project, kind: str, space: EmbeddingSpace, version: ModelVersion | None,
           options: dict, user) -> InferenceJob:
    from inference.tasks import embed_step

    job = InferenceJob.objects.create(
        project=project, kind=kind, space=space, model_version=version, options=options,
        created_by=user, tiles_total=project.tiles.count(),
        patches_total=project.patches.count(),
    )
    transaction.on_commit(lambda: embed_step.delay(job.pk))
    return job


def _enter_stage(job: InferenceJob, status: str, done_field: str, done: int) -> None:
    """Move to ``status`` (once; a retried step finds it already there) and re-count progress
    from the database, so a step that died between storing and counting is corrected."""
    fields: dict = {done_field: done}
    if job.status != status:
        fields.update(status=status, stage_started_at=timezone.now(), stage_done_at_start=done)
    InferenceJob.objects.filter(pk=job.pk).update(**fields)
    job.refresh_from_db()


def _work_until_deadline(job: InferenceJob, done_field: str, chunk: Callable[[], int]) -> bool:
    """Run ``chunk`` until it finds nothing to claim (True) or the step's time is up (False),
    counting what each chunk stored and beating the job's heartbeat."""
    deadline = time.monotonic() + settings.SPIDER_TASK_STEP_SECONDS
    while time.monotonic() < deadline:
        n = chunk()
        if n == 0:
            return True
        InferenceJob.objects.filter(pk=job.pk).update(
            **{done_field: F(done_field) + n}, heartbeat_at=timezone.now())
    return False


def embed_step(job: InferenceJob) -> str:
    """Embed missing tiles until the step's time is up. Returns what to run next:
    ``"embed"`` (more to do), ``"next"`` (all embedded) or ``"wait"`` (only chunks other
    workers hold are left; the last of them moves the job on)."""
    remaining = missing_tiles(job.project, job.space).count()
    _enter_stage(job, InferenceJob.Status.EMBEDDING, "tiles_done", job.tiles_total - remaining)
    if not _work_until_deadline(
            job, "tiles_done",
            lambda: embed_chunk(job.project, job.space, settings.SPIDER_EMBED_CHUNK)):
        return "embed"
    if missing_tiles(job.project, job.space).exists():
        return "wait"
    InferenceJob.objects.filter(pk=job.pk).update(tiles_done=job.tiles_total)
    return "next"


def predict_step(job: InferenceJob) -> str:
    """Predict unpredicted patches until the step's time is up; returns ``"predict"`` (more
    to do), ``"done"`` or ``"wait"`` (as for :func:`embed_step`)."""
    version = job.model_version
    _enter_stage(job, InferenceJob.Status.PREDICTING, "patches_done",
                 job.patches_total - unpredicted_patches(version).count())
    head = load_head(version)
    if not _work_until_deadline(
            job, "patches_done",
            lambda: predict_chunk(version, head, settings.SPIDER_PREDICT_CHUNK)):
        return "predict"
    if unpredicted_patches(version).exists():
        return "wait"
    _finish(job, {"model_version": version.name,
                  "patches": Patch.objects.filter(project=job.project).count()})
    return "done"


def train_step(job: InferenceJob) -> None:
    """Train the head in one go (minutes on a CPU even for a whole organ's embeddings).

    Training is claimed by moving the job to ``training``; a redelivered step takes over only
    when the trainer's heartbeat is older than ``SPIDER_JOB_STALE_SECONDS`` (its worker died),
    so two workers never train the same job at once.
    """
    now = timezone.now()
    stale = now - timedelta(seconds=settings.SPIDER_JOB_STALE_SECONDS)
    claimed = InferenceJob.objects.filter(pk=job.pk).filter(
        Q(status__in=[InferenceJob.Status.PENDING, InferenceJob.Status.EMBEDDING])
        | Q(status=InferenceJob.Status.TRAINING, heartbeat_at__lt=stale)
    ).update(status=InferenceJob.Status.TRAINING, stage_started_at=now, heartbeat_at=now,
             stage_done_at_start=0, patches_done=0)
    if not claimed:
        return

    def progress(done: int, total: int) -> None:
        if done == 1 or done % 20 == 0 or done == total:
            InferenceJob.objects.filter(pk=job.pk).update(
                patches_done=done, patches_total=total, heartbeat_at=timezone.now())

    version = train_version(job.project, job.space, TrainOptions(**job.options),
                            user=job.created_by, progress=progress)
    InferenceJob.objects.filter(pk=job.pk).update(model_version=version)
    _finish(job, {"model_version": version.name, "metrics": {
        k: version.metrics.get(k) for k in ("accuracy", "balanced_accuracy", "weighted_f1",
                                            "oof_accuracy", "evaluated_on")}})


def _finish(job: InferenceJob, summary: dict) -> None:
    InferenceJob.objects.filter(pk=job.pk).exclude(status=InferenceJob.Status.SUCCEEDED).update(
        status=InferenceJob.Status.SUCCEEDED, finished_at=timezone.now(), summary=summary)


def fail(job_id: int, error: str) -> None:
    log.error("inference job %s failed: %s", job_id, error)
    InferenceJob.objects.filter(pk=job_id).update(
        status=InferenceJob.Status.FAILED, finished_at=timezone.now(), error=error[:4000])
