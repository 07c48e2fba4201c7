"""Import jobs: what was imported, by whom, how far it got and what was skipped."""

from django.conf import settings
from django.db import models

from .projects import Project


class TrackedJob(models.Model):
    """What every import and export records: who started it, its state and its progress.

    State machine: ``pending`` -> ``running`` -> ``succeeded`` | ``failed``. Progress
    (``done``/``total``) is committed while the job runs so the project page can show it.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        abstract = True

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)


class ImportJob(TrackedJob):
    """One run of an importer: progress is counted in ``unit`` (bytes or records) while
    files are read; ``summary`` holds the final report (the ``--json`` object)."""

    class Kind(models.TextChoices):
        SPIDER = "spider", "SPIDER folder or archive"
        FOLDER = "folder", "Class-per-folder images"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="import_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    source = models.CharField(max_length=1024)
    unit = models.CharField(max_length=16, default="bytes")
    summary = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.kind} import of {self.source} ({self.status})"
