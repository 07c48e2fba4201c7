"""Patches: a central tile with its label, in a 5x5 grid of context tiles."""

from django.db import models

from .projects import LabelClass, Project, Slide
from .tiles import Tile

GRID_SIZE = 5
CENTRE_INDEX = 12  # row-major index of "2_2" in the 5x5 grid


class Split(models.TextChoices):
    TRAIN = "train", "Train"
    TEST = "test", "Test"
    NONE = "", "None"


class PatchStatus(models.TextChoices):
    UNREVIEWED = "unreviewed", "Unreviewed"
    CONFIRMED = "confirmed", "Confirmed"
    CORRECTED = "corrected", "Corrected"
    UNSURE = "unsure", "Unsure"
    EXCLUDED = "excluded", "Excluded"
    DISPUTED = "disputed", "Disputed"


class Patch(models.Model):
    """A central 224x224 patch to be reviewed.

    ``grid`` lists the 25 tile ids of the 1120x1120 context in row-major order (``None`` for a
    missing neighbour, shown blank). It is only ever read whole, never filtered or counted on.
    ``current_label`` and ``status`` are derived from the review history and kept here so the
    queues can sort and filter on indexed columns; ``version`` increases with every change so a
    stale edit is detected instead of overwriting a newer one.
    """

    # db_index=False: patch_project_id (project, id) and the other project-first indexes
    # serve every lookup by project; one index fewer to write per imported patch
    # db_constraint=False on every key here: annotations.set_keys checks them once per
    # statement (an import inserts thousands of patches per statement)
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="patches",
                                db_index=False, db_constraint=False)
    slide = models.ForeignKey(Slide, on_delete=models.RESTRICT, related_name="patches",
                              db_constraint=False)
    split = models.CharField(max_length=8, choices=Split.choices, blank=True)
    image_name = models.CharField(max_length=255)
    centre_tile = models.ForeignKey(Tile, on_delete=models.RESTRICT, related_name="+",
                                    db_constraint=False)
    grid = models.JSONField(help_text="25 tile ids, row-major; null where context is missing")
    missing_context = models.PositiveSmallIntegerField(default=0)
    original_label = models.ForeignKey(LabelClass, on_delete=models.RESTRICT, null=True,
                                       blank=True, related_name="+", db_constraint=False)
    current_label = models.ForeignKey(LabelClass, on_delete=models.RESTRICT, null=True,
                                      blank=True, related_name="+", db_constraint=False)
    status = models.CharField(max_length=16, choices=PatchStatus.choices,
                              default=PatchStatus.UNREVIEWED)
    version = models.PositiveIntegerField(default=1)
    decisions = models.PositiveSmallIntegerField(
        default=0, help_text="reviewers whose decision is in force (derived, for the queues)")
    # Live leases, mirrored on the row that "next item" locks: a reviewer whose query began
    # before another's lease committed re-checks these columns (not a lease subquery) and
    # skips the patch. See annotations.queues.
    leases_held = models.PositiveSmallIntegerField(default=0)
    lease_expires = models.DateTimeField(null=True, blank=True)
    # Level-0 pixel position of the patch's top-left corner on a whole slide (else null).
    slide_x = models.PositiveIntegerField(null=True, blank=True)
    slide_y = models.PositiveIntegerField(null=True, blank=True)
    import_job = models.ForeignKey("annotations.ImportJob", on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="patches",
                                   db_constraint=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "patches"
        constraints = [
            models.UniqueConstraint(fields=["project", "image_name"], name="patch_name_once"),
            models.CheckConstraint(condition=models.Q(split__in=["train", "test", ""]),
                                   name="patch_split_known"),
        ]
        indexes = [
            models.Index(fields=["project", "id"], name="patch_project_id"),
            models.Index(fields=["project", "current_label", "id"], name="patch_current_label"),
            models.Index(fields=["project", "original_label", "id"], name="patch_original_label"),
            models.Index(fields=["project", "status", "id"], name="patch_status"),
            models.Index(fields=["project", "split", "id"], name="patch_split"),
            models.Index(fields=["project", "slide", "id"], name="patch_slide"),
        ]  # the queues' indexes are on inference.QueueScore

    def __str__(self) -> str:
        return self.image_name
