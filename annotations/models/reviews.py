"""The append-only history of label decisions."""

from django.conf import settings
from django.db import models

from .patches import Patch
from .projects import LabelClass


class ReviewAction(models.TextChoices):
    CONFIRM = "confirm", "Confirm"
    CORRECT = "correct", "Correct"
    UNSURE = "unsure", "Unsure"
    EXCLUDE = "exclude", "Exclude"
    COMMENT = "comment", "Comment"
    UNDO = "undo", "Undo"
    ADJUDICATE = "adjudicate", "Adjudicate"
    REOPEN = "reopen", "Reopen"


class ReviewSource(models.TextChoices):
    """How a decision was made: one patch at a time (timed), or in a batch (grid mode)."""

    SINGLE = "single", "One at a time"
    BATCH = "batch", "Batch (grid)"


class Review(models.Model):
    """One decision on one patch. Rows are never updated or deleted: the label is derived."""

    patch = models.ForeignKey(Patch, on_delete=models.CASCADE, related_name="reviews")
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.RESTRICT,
                                 related_name="reviews")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    action = models.CharField(max_length=16, choices=ReviewAction.choices)
    from_label = models.ForeignKey(LabelClass, on_delete=models.RESTRICT, null=True, blank=True,
                                   related_name="+")
    to_label = models.ForeignKey(LabelClass, on_delete=models.RESTRICT, null=True, blank=True,
                                 related_name="+")
    reason = models.CharField(max_length=200, blank=True)
    comment = models.TextField(blank=True)
    patch_version = models.PositiveIntegerField(help_text="Patch version the decision was made on")
    time_spent_ms = models.PositiveIntegerField(null=True, blank=True)
    model_version = models.CharField(max_length=120, blank=True)
    shown_probabilities = models.JSONField(null=True, blank=True)
    source = models.CharField(max_length=8, choices=ReviewSource.choices,
                              default=ReviewSource.SINGLE,
                              help_text="the decisions endpoint (single) or the batch one")

    class Meta:
        ordering = ["patch", "created_at", "id"]
        indexes = [
            models.Index(fields=["patch", "id"], name="review_patch_id"),
            models.Index(fields=["reviewer", "patch"], name="review_reviewer_patch"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.reviewer_id} on patch {self.patch_id}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None:
            raise ValueError("Reviews are append-only; record a new review instead")
        super().save(*args, **kwargs)
