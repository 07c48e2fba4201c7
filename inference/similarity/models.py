"""What similarity search stores: the index per project and space, its jobs, the candidates
proposed from seeds (and the answers they got) and the class prototypes.

Imported by :mod:`inference.models`, so Django registers these in the ``inference`` app; it
names ``EmbeddingSpace`` by string to keep the import one way.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from annotations.models import LabelClass, Patch, Project, Review, TrackedJob


class SimilarityIndex(models.Model):
    """A faiss index of one project's patches in one embedding space, stored in Django's
    storage (``file``). ``max_patch_id`` and ``size`` say what it covers, so a query can tell
    that patches arrived since and ask for an update. One per project and space; an index of
    a space the project no longer uses is deleted when the new one is built."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    space = models.ForeignKey("inference.EmbeddingSpace", on_delete=models.CASCADE,
                              related_name="+")
    file = models.CharField(max_length=1024, help_text="storage name of the serialised index")
    kind = models.CharField(max_length=32, default="flat-fp16-ip")
    size = models.PositiveIntegerField(default=0, help_text="patches in the index")
    dim = models.PositiveIntegerField(default=0)
    max_patch_id = models.BigIntegerField(default=0)
    not_embedded = models.PositiveIntegerField(
        default=0, help_text="patches left out: their centre tile has no embedding yet")
    built_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "space"],
                                               name="similarity_index_once")]

    def __str__(self) -> str:
        return f"similarity index of {self.project_id} in space {self.space_id} ({self.size})"


class SimilarityJob(TrackedJob):
    """Build or update the index, propose candidates for a class, or compute the class
    prototypes and few-shot figures: one kind per job, on the shared life cycle.

    ``options`` holds the kind's inputs (the class, the seeds, K); ``summary`` what it found.
    Each executor re-reads the database, so a resumed job simply runs again: the index is
    rewritten whole, candidates are upserted by (patch, class), prototypes replaced."""

    class Kind(models.TextChoices):
        INDEX = "index", "Build similarity index"
        CANDIDATES = "candidates", "Propose candidates"
        PROTOTYPES = "prototypes", "Class prototypes and few-shot figures"

    job_type = "similarity"

    project = models.ForeignKey(Project, on_delete=models.CASCADE,
                                related_name="similarity_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    space = models.ForeignKey("inference.EmbeddingSpace", on_delete=models.PROTECT,
                              related_name="+", null=True, blank=True)
    summary = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"


class Candidate(models.Model):
    """An unlabelled patch proposed as ``label`` because it is similar to ``seeds`` (patch
    ids of that class), and the answer it got.

    ``rejected`` rows are what keeps a "no" from being proposed again for that class: a new
    round upserts by (patch, label) and never touches an answered row. A "yes" or another
    class is a review row (``review``) written through the review path, whose comment and
    ``shown_probabilities`` name the seeds."""

    class State(models.TextChoices):
        PROPOSED = "proposed", "Proposed"
        ACCEPTED = "accepted", "Accepted (yes)"
        REJECTED = "rejected", "Rejected (no)"
        RELABELLED = "relabelled", "Another class"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    patch = models.ForeignKey(Patch, on_delete=models.CASCADE, related_name="candidates")
    label = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    similarity = models.FloatField(help_text="best inner product with a seed (cosine)")
    seeds = models.JSONField(help_text="ids of the seed patches that retrieved it, best first")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PROPOSED)
    job = models.ForeignKey(SimilarityJob, on_delete=models.SET_NULL, null=True, blank=True,
                            related_name="+")
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)
    review = models.ForeignKey(Review, on_delete=models.SET_NULL, null=True, blank=True,
                               related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["patch", "label"],
                                               name="candidate_once_per_class")]
        indexes = [models.Index(fields=["project", "state", "label", "-similarity"],
                                name="candidate_queue")]

    def __str__(self) -> str:
        return f"patch {self.patch_id} as {self.label_id} ({self.state})"


class ClassPrototypes(models.Model):
    """Mean centre-tile embedding (L2-normalised) of each class's settled patches in one
    space: float32 bytes, one row per id in ``class_ids``. ``counts`` says how many patches
    made each; ``fewshot`` holds the few-shot and retrieval figures of the same job."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    space = models.ForeignKey("inference.EmbeddingSpace", on_delete=models.CASCADE,
                              related_name="+")
    class_ids = models.JSONField()
    counts = models.JSONField()
    matrix = models.BinaryField()
    basis = models.CharField(max_length=32, default="settled",
                             help_text="which patches made them: settled, or labelled")
    fewshot = models.JSONField(default=dict, blank=True)
    computed_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "space"],
                                               name="prototypes_once")]

    def __str__(self) -> str:
        return f"prototypes of {self.project_id} in space {self.space_id}"
