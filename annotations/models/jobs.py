"""Jobs: the one life cycle every kind of long work shares (import, export, inference, ...).

The transitions live in :mod:`annotations.lifecycle`; this module holds the columns.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import models
from django.utils import timezone

from .projects import Project

_J = TypeVar("_J", bound="TrackedJob")


class JobQuerySet(models.QuerySet[_J]):
    def stalled(self, now: datetime | None = None) -> JobQuerySet[_J]:
        """Running jobs whose worker has not beaten the heartbeat within the stale window."""
        return self.filter(status=TrackedJob.Status.RUNNING,
                           heartbeat_at__lt=stale_before(now))

    def live(self) -> JobQuerySet[_J]:
        return self.filter(status__in=TrackedJob.LIVE)


def stale_before(now: datetime | None = None) -> datetime:
    """Heartbeats older than this mean the worker died (it beats every few seconds)."""
    return (now or timezone.now()) - timedelta(seconds=settings.SPIDER_JOB_STALE_SECONDS)


class TrackedJob(models.Model):
    """Who started a job, where it is in its life cycle and how far it got.

    State machine (stored ``status``; ``stalled`` is derived, see :attr:`state`)::

        pending --claim--> running --succeed--> succeeded
           |                 |  \\--fail-----> failed --resume--> pending
           |                 |   \\--cancel--> cancelled
           +--cancel---------+
        running with no heartbeat for SPIDER_JOB_STALE_SECONDS = stalled --resume--> pending

    A worker beats ``heartbeat_at`` while it works (a background thread, so a long step
    still beats); a job whose worker died therefore shows as stalled within the stale
    window, with ``heartbeat_at`` saying when it last moved. ``stage`` names the phase of a
    multi-stage job (e.g. embedding, then predicting); ``done``/``total`` count ``unit`` in
    the current stage, and ``stage_started_at``/``stage_done_at_start`` give its rate.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    LIVE = (Status.PENDING, Status.RUNNING)
    STALLED = "stalled"

    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    stage = models.CharField(max_length=32, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="last sign of life from the worker")
    finished_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="times a worker took it up")
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    stage_done_at_start = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        abstract = True

    job_type: str = ""  # the registry name (see annotations.lifecycle.JOB_TYPES)
    # When this instance last wrote absolute progress (time.monotonic(); not a column): how
    # annotations.lifecycle.advance throttles its writes.
    _last_advance: float | None = None

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE

    @property
    def is_stalled(self) -> bool:
        return (self.status == self.Status.RUNNING and self.heartbeat_at is not None
                and self.heartbeat_at < stale_before())

    @property
    def state(self) -> str:
        """``status``, or ``stalled`` for a running job whose worker stopped beating."""
        return self.STALLED if self.is_stalled else self.status

    @property
    def waiting_for_worker(self) -> bool:
        """Pending for more than SPIDER_JOB_PENDING_WARN_SECONDS since it was queued (or
        re-queued: ``heartbeat_at`` of a pending job): no worker has taken it up, because
        none is running for its queue or all are busy."""
        if self.status != self.Status.PENDING:
            return False
        queued = self.heartbeat_at or self.created_at
        warn = timedelta(seconds=settings.SPIDER_JOB_PENDING_WARN_SECONDS)
        return queued is not None and queued < timezone.now() - warn

    @property
    def state_display(self) -> str:
        return "Stalled" if self.is_stalled else self.get_status_display()

    @property
    def can_resume(self) -> bool:
        return self.is_stalled or self.status == self.Status.FAILED

    @property
    def can_cancel(self) -> bool:
        return self.is_live

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)

    @property
    def rate(self) -> float | None:
        """Units per second in the current stage, since it started (or resumed)."""
        if not self.stage_started_at or self.status != self.Status.RUNNING:
            return None
        seconds = (timezone.now() - self.stage_started_at).total_seconds()
        done = self.done - self.stage_done_at_start
        return done / seconds if seconds > 0 and done > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if not rate or self.total is None:
            return None
        return max(0.0, (self.total - self.done) / rate)


class ImportJob(TrackedJob):
    """One run of an importer: progress is counted in ``unit`` (bytes or records) while
    files are read; ``summary`` holds the final report (the ``--json`` object)."""

    class Kind(models.TextChoices):
        SPIDER = "spider", "SPIDER folder or archive"
        FOLDER = "folder", "Class-per-folder images"
        SLIDE = "slide", "Whole-slide image"

    job_type = "import"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=1024)
    summary = models.JSONField(null=True, blank=True)
    # Its own column, not inferred from created_by: that is set null when the user is
    # deleted, which made a browser-started job the operator's, free to read anywhere.
    confined = models.BooleanField(
        default=True, help_text="reads only inside SPIDER_IMPORT_ROOTS (started from the "
                                "browser or the API); off for a management command's job")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} import of {self.source} ({self.status})"
