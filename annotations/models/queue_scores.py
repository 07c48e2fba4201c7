"""What the review queues sort on, one narrow row per patch."""

from __future__ import annotations

from django.db import models
from django.db.models import F

from .patches import Patch
from .projects import Project


class QueueScore(models.Model):
    """The active model version's scores for one patch, and whether it awaits review.

    Kept apart from the patch row on purpose: the patch table is wide and has a dozen
    indexes, so activating a version (which changes every patch's scores) rewrote 160k
    patch rows in ~9 s; these narrow rows with their three partial indexes take a fraction
    of that. The queues join it on the patch's primary key and lock the patch row.

    Written by two modules only: :mod:`inference.queue_scores` (the scores) and
    :mod:`annotations.reviewing` (``unreviewed``, mirrored from ``Patch.status`` in the same
    transaction). The importer creates one with every patch.
    """

    patch = models.OneToOneField(Patch, primary_key=True, on_delete=models.CASCADE,
                                 related_name="queue_score")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+",
                                db_index=False)  # every index below leads with it
    unreviewed = models.BooleanField(default=True)
    label_quality = models.FloatField(null=True, blank=True)
    disagree = models.BooleanField(default=False)
    entropy = models.FloatField(null=True, blank=True)

    class Meta:
        indexes = [
            models.Index(fields=["project", "label_quality", "patch"],
                         condition=models.Q(unreviewed=True), name="queue_unreviewed"),
            models.Index(fields=["project", "label_quality", "patch"],
                         condition=models.Q(unreviewed=True, disagree=True),
                         name="queue_disagreement"),
            models.Index(F("project"), F("entropy").desc(), F("patch"),
                         condition=models.Q(unreviewed=True), name="queue_uncertain"),
        ]

    def __str__(self) -> str:
        return f"queue scores of patch {self.patch_id}"
