"""Leases: which reviewer holds which queue item, until when."""

from django.conf import settings
from django.db import models

from .patches import Patch


class Lease(models.Model):
    """A patch handed to a reviewer by "next item", exclusive until ``expires_at``.

    A patch has at most ``reviews_required - decisions so far`` live leases, each to a
    different reviewer; an expired lease is ignored (a closed tab frees its items) and
    deleted lazily. Taken with ``SELECT ... FOR UPDATE SKIP LOCKED`` (see annotations.queues).
    """

    patch = models.ForeignKey(Patch, on_delete=models.CASCADE, related_name="leases")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                                 related_name="leases")
    queue = models.CharField(max_length=16)
    skipped = models.BooleanField(
        default=False, help_text="skipped by its reviewer: kept from them, not from others")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["patch", "reviewer"], name="one_lease_per_reviewer"),
        ]
        indexes = [models.Index(fields=["reviewer", "expires_at"], name="lease_reviewer")]

    def __str__(self) -> str:
        return f"patch {self.patch_id} to {self.reviewer_id} until {self.expires_at:%H:%M:%S}"
