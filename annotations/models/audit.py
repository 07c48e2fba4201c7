"""Who changed a project's review settings, from what to what, when (append-only)."""

from django.conf import settings
from django.db import models

from .projects import Project


class ProjectSettingChange(models.Model):
    """One changed setting of a project (``reviews_required``, ``audit_fraction``,
    ``lease_seconds``), with the old and new values as the settings page shows them."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE,
                                related_name="setting_changes")
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.RESTRICT,
                                   related_name="+")
    changed_at = models.DateTimeField(auto_now_add=True)
    field = models.CharField(max_length=40)
    old_value = models.CharField(max_length=40)
    new_value = models.CharField(max_length=40)

    class Meta:
        ordering = ["-changed_at", "-id"]

    def __str__(self) -> str:
        return f"{self.field}: {self.old_value} -> {self.new_value} by {self.changed_by_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Setting changes are append-only; record a new one instead")
        super().save(*args, **kwargs)
