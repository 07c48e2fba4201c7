"""Export jobs: every snapshot written out of a project, with who, what and file hashes."""

from django.db import models

from .jobs import TrackedJob
from .projects import Project


class ExportJob(TrackedJob):
    """One export (Hugging Face datasets, SPIDER layout or CSV), from a command or the page.

    ``options`` holds the filter and format options (never a token); ``files`` maps each
    written file's path (relative to the export) to its sha256, so two snapshots can be
    compared without the files. ``result_file`` is the storage name of the download (a zip
    of the folder, or the CSV) for exports run by a worker; empty for command-line exports.
    """

    class Kind(models.TextChoices):
        HF = "hf", "Hugging Face datasets"
        SPIDER = "spider", "SPIDER layout"
        CSV = "csv", "CSV table"

    job_type = "export"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="export_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    counts = models.JSONField(null=True, blank=True)
    files = models.JSONField(default=dict, blank=True)
    result_file = models.CharField(max_length=1024, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} export of {self.project} ({self.status})"
