"""Export jobs: every snapshot written out of a project, with who, what and file hashes."""

from django.conf import settings
from django.db import models

from .projects import Project


class ExportJob(models.Model):
    """One export (Hugging Face datasets, SPIDER layout or CSV), from a command or the page.

    ``options`` holds the filter and format options (never a token); ``files`` maps each
    written file's path (relative to the export) to its sha256, so two snapshots can be
    compared without the files. ``result_file`` is the storage name of the download (a zip
    of the folder, or the CSV) for exports run by a worker; empty for command-line exports.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    class Kind(models.TextChoices):
        HF = "hf", "Hugging Face datasets"
        SPIDER = "spider", "SPIDER layout"
        CSV = "csv", "CSV table"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    done = models.BigIntegerField(default=0)
    total = models.BigIntegerField(null=True, blank=True)
    counts = models.JSONField(null=True, blank=True)
    files = models.JSONField(default=dict, blank=True)
    result_file = models.CharField(max_length=1024, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} export of {self.project} ({self.status})"

    @property
    def percent(self) -> float | None:
        if not self.total:
            return None
        return min(100.0, 100.0 * self.done / self.total)
