"""Executors of inference jobs: advance a job one bounded, idempotent step at a time.

A job runs as a chain of Celery steps (:mod:`inference.tasks` chains them; this module never
imports tasks). Each step works for at most ``SPIDER_TASK_STEP_SECONDS`` on claimed chunks
(see :mod:`inference.embedding`) and says what should run next. Nothing in a message says how
far the job got: every step asks the database what is still missing, so a step redelivered
after its worker died (``acks_late``) or resumed from the page simply carries on, and a
duplicate step finds nothing left to claim. Progress, heartbeat, success and failure go
through the shared life cycle (:mod:`annotations.lifecycle`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from annotations import lifecycle
from annotations.models import Patch
from annotations.models.jobs import stale_before
from inference import rounds
from inference.embedding import embed_chunk, missing_tiles
from inference.models import InferenceJob
from inference.options import TrainOptions
from inference.predicting import predict_chunk, unpredicted_patches
from inference.registry import get_space, load_head
from inference.training import train_version

Stage = InferenceJob.Stage
EmbedOutcome = Literal["embed", "next", "wait"]
PredictOutcome = Literal["predict", "done", "wait"]


def _ensure_space(job: InferenceJob) -> None:
    """Resolve the embedding space a job names by backbone (builds the backbone once, here
    in the worker, to check and hash its weights)."""
    if job.space_id is not None:
        return
    job.space = get_space(job.options["backbone"], job.options.get("backbone_weights") or None)
    InferenceJob.objects.filter(pk=job.pk).update(space=job.space)


def _enter_stage(job: InferenceJob, stage: str, total: int, unit: str, done: int) -> None:
    """Move to ``stage`` (once; a retried step finds it already there) and re-count progress
    from the database, so a step that died between storing and counting is corrected."""
    if job.stage != stage:
        lifecycle.start_stage(job, stage, total=total, unit=unit, done=done)
    else:
        lifecycle.advance(job, done, total=total, force=True)


def _work_until_deadline(job: InferenceJob, chunk: Callable[[], int]) -> bool:
    """Run ``chunk`` until it finds nothing to claim (True) or the step's time is up (False),
    adding what each chunk stored to the job's progress."""
    deadline = time.monotonic() + settings.SPIDER_TASK_STEP_SECONDS
    while time.monotonic() < deadline:
        n = chunk()
        if n == 0:
            return True
        lifecycle.advance(job, by=n)
    return False


def embed_step(job: InferenceJob) -> EmbedOutcome:
    """Embed missing tiles until the step's time is up: ``"embed"`` (more to do), ``"next"``
    (all embedded) or ``"wait"`` (only chunks other workers hold are left; the last of them
    moves the job on)."""
    _ensure_space(job)
    space = job.space
    assert space is not None
    remaining = missing_tiles(job.project, space).count()
    _enter_stage(job, Stage.EMBEDDING, job.tiles_total, "tiles", job.tiles_total - remaining)
    if not _work_until_deadline(
            job, lambda: embed_chunk(job.project, space, settings.SPIDER_EMBED_CHUNK)):
        return "embed"
    if missing_tiles(job.project, space).exists():
        return "wait"
    lifecycle.advance(job, job.tiles_total, force=True)
    return "next"


def predict_step(job: InferenceJob) -> PredictOutcome:
    """Predict unpredicted patches until the step's time is up: ``"predict"`` (more to do),
    ``"done"`` or ``"wait"`` (as for :func:`embed_step`)."""
    version = job.model_version
    assert version is not None
    _enter_stage(job, Stage.PREDICTING, job.patches_total, "patches",
                 job.patches_total - unpredicted_patches(version).count())
    head = load_head(version)
    if not _work_until_deadline(
            job, lambda: predict_chunk(version, head, settings.SPIDER_PREDICT_CHUNK)):
        return "predict"
    if unpredicted_patches(version).exists():
        return "wait"
    lifecycle.succeed(job, summary={"model_version": version.name,
                                    "patches": Patch.objects.filter(project=job.project).count()})
    return "done"


def train_step(job: InferenceJob) -> None:
    """Train the head in one go (minutes on a CPU even for a whole organ's embeddings).

    Training is claimed by moving the job to the ``training`` stage; a redelivered step takes
    over only when the trainer's heartbeat is older than ``SPIDER_JOB_STALE_SECONDS`` (its
    worker died), so two workers never train the same job at once.
    """
    claimed = InferenceJob.objects.filter(pk=job.pk, status=InferenceJob.Status.RUNNING).filter(
        ~Q(stage=Stage.TRAINING) | Q(heartbeat_at__lt=stale_before())
    ).update(stage=Stage.TRAINING, heartbeat_at=timezone.now())
    if not claimed:
        return
    lifecycle.start_stage(job, Stage.TRAINING, total=None, unit="steps")
    assert job.space is not None

    def progress(done: int, total: int) -> None:
        lifecycle.advance(job, done, total=total)

    extra = None
    if job.kind == InferenceJob.Kind.ROUND:
        extra = {"round": {"job": job.pk, "trigger": job.options.get("trigger", "button"),
                           **rounds.snapshot(job.project)}}
    version = train_version(job.project, job.space, TrainOptions(**job.options["train"]),
                            user=job.created_by, progress=progress, extra=extra)
    activation = version.training.get("activation", {})
    lifecycle.succeed(job, model_version=version, summary={
        "model_version": version.name, "activated": activation.get("activated"),
        "activation": activation.get("reason"), "metrics": {
            k: version.metrics.get(k) for k in ("accuracy", "balanced_accuracy", "weighted_f1",
                                                "oof_accuracy", "evaluated_on")}})
