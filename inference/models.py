"""What the model side stores: backbones, cached tile embeddings, model versions, predictions.

Data flows one way (tiles -> embeddings -> predictions); annotations never imports this
module: the queues read predictions through :mod:`inference.queries`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F
from django.utils import timezone

from annotations.models import LabelClass, Patch, Project, Tile, TrackedJob


class EmbeddingSpace(models.Model):
    """A backbone with one set of weights: the key of the embedding cache.

    Tiles are embedded once per space; every model version built on the same backbone and
    weights reads the same cached vectors. ``weights_sha256`` is empty for weightless
    backbones (the demo's colour/texture encoder) and random-initialised test models.
    """

    backbone = models.CharField(max_length=128, help_text="registry name, e.g. hibou-l")
    weights_path = models.CharField(max_length=1024, blank=True)
    weights_sha256 = models.CharField(max_length=64, blank=True)
    embed_dim = models.PositiveIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["backbone", "weights_sha256"],
                                    name="embedding_space_once"),
        ]

    def __str__(self) -> str:
        suffix = f"@{self.weights_sha256[:12]}" if self.weights_sha256 else ""
        return f"{self.backbone}{suffix}"


class TileEmbedding(models.Model):
    """One tile's embedding in one space, float16 bytes (2 KiB for a 1024-d vector)."""

    space = models.ForeignKey(EmbeddingSpace, on_delete=models.CASCADE, related_name="+")
    tile = models.ForeignKey(Tile, on_delete=models.CASCADE, related_name="+")
    vector = models.BinaryField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["space", "tile"], name="tile_embedded_once"),
        ]

    def __str__(self) -> str:
        return f"tile {self.tile_id} in space {self.space_id}"



class HeadKind(models.TextChoices):
    CONTEXT = "context", "SPIDER context head (5x5)"
    CENTRE = "centre", "Centre-only linear head"


class ModelVersion(models.Model):
    """A backbone + head that can predict a project's classes, and where it came from.

    ``class_names`` is the head's output order (the project's classes by exact name);
    ``training`` describes the data snapshot it was trained on (empty for a registered
    published head) and ``metrics`` its test-split evaluation. At most one version per
    project is active: the one the queues and the review page use.
    """

    class Source(models.TextChoices):
        REGISTERED = "registered", "Registered from files"
        TRAINED = "trained", "Trained here"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="model_versions")
    name = models.CharField(max_length=128)
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.PROTECT, related_name="models")
    head_kind = models.CharField(max_length=16, choices=HeadKind.choices,
                                 default=HeadKind.CONTEXT)
    head_file = models.CharField(max_length=1024, help_text="storage name of the head weights")
    head_sha256 = models.CharField(max_length=64)
    head_config = models.JSONField(default=dict, blank=True)
    class_names = models.JSONField()
    source = models.CharField(max_length=16, choices=Source.choices)
    source_detail = models.CharField(max_length=1024, blank=True)
    training = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="model_name_once"),
            models.UniqueConstraint(fields=["project"], condition=models.Q(is_active=True),
                                    name="one_active_model"),
        ]

    def __str__(self) -> str:
        return self.name


class Prediction(models.Model):
    """A model version's opinion of one patch, and the scores the review queues sort on.

    ``scored_label`` is the label the label-quality score was computed for (the current
    label at prediction time); ``out_of_fold`` marks training patches predicted by a head
    that never saw their slide, so their label quality is not flattered.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE,
                                      related_name="predictions")
    patch = models.ForeignKey(Patch, on_delete=models.CASCADE, related_name="predictions")
    probabilities = models.JSONField(help_text="one probability per class, in class order")
    predicted = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    confidence = models.FloatField()
    margin = models.FloatField()
    entropy = models.FloatField()
    scored_label = models.ForeignKey(LabelClass, on_delete=models.CASCADE, null=True,
                                     blank=True, related_name="+")
    label_quality = models.FloatField(null=True, blank=True)
    disagree = models.BooleanField(default=False)
    out_of_fold = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "patch"],
                                    name="patch_predicted_once"),
        ]
        indexes = [
            models.Index(fields=["model_version", "disagree", "label_quality"],
                         name="prediction_disagreement"),
            models.Index(fields=["model_version", "entropy"], name="prediction_entropy"),
        ]

    def __str__(self) -> str:
        return f"patch {self.patch_id} by model {self.model_version_id}"



class QueueScore(models.Model):
    """One model version's scores for one patch as the review queues sort them, and whether
    the patch awaits review: narrow rows with a partial index per queue and version.

    Every version keeps its own rows (written as it predicts), so activating a version
    writes nothing per patch: the queues simply read the active version's rows. Written
    only by :mod:`inference.queue_scores`: scores when predictions are stored, a row with
    no scores for a patch the version has not predicted (so it still has its place in the
    unreviewed queue), and ``unreviewed`` when the review path says a patch's state changed
    (``annotations.signals``).
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE,
                                      related_name="+", db_index=False)  # indexes lead with it
    patch = models.ForeignKey(Patch, on_delete=models.CASCADE, related_name="queue_scores")
    unreviewed = models.BooleanField(default=True)
    label_quality = models.FloatField(null=True, blank=True)
    disagree = models.BooleanField(default=False)
    entropy = models.FloatField(null=True, blank=True)
    more_reads = models.FloatField(
        null=True, blank=True,
        help_text="ActiveLab score (lowest: one more read helps most); set once two reviewers "
                  "have read the same patches")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "patch"], name="queue_score_once"),
        ]
        indexes = [
            models.Index(fields=["model_version", "label_quality", "patch"],
                         condition=models.Q(unreviewed=True), name="queue_score_unreviewed"),
            models.Index(fields=["model_version", "label_quality", "patch"],
                         condition=models.Q(unreviewed=True, disagree=True),
                         name="queue_score_disagreement"),
            models.Index(F("model_version"), F("entropy").desc(), F("patch"),
                         condition=models.Q(unreviewed=True), name="queue_score_uncertain"),
            models.Index(fields=["model_version", "more_reads", "patch"],
                         condition=models.Q(unreviewed=True, more_reads__isnull=False),
                         name="queue_score_more_reads"),
        ]

    def __str__(self) -> str:
        return f"queue scores of patch {self.patch_id} by model {self.model_version_id}"


class InferenceJob(TrackedJob):
    """Embed missing tiles, then predict (or train a head), on the shared job life cycle.

    ``stage`` is ``embedding`` then ``predicting`` or ``training``; ``done``/``total`` count
    the current stage (tiles, then patches). The Celery steps that do the work are
    idempotent and re-check what is missing, so a resumed job carries on where the database
    says it stopped. ``space`` is resolved by the first step when the job names a backbone
    (building a backbone and hashing its weights is a worker's job, not a web request's).
    """

    class Kind(models.TextChoices):
        PREDICT = "predict", "Predict"
        TRAIN = "train", "Train head"
        ROUND = "round", "Retraining round"

    class Stage(models.TextChoices):
        EMBEDDING = "embedding", "Embedding tiles"
        PREDICTING = "predicting", "Predicting patches"
        TRAINING = "training", "Training head"

    job_type = "inference"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="inference_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.PROTECT, related_name="+",
                              null=True, blank=True)
    model_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True,
                                      blank=True, related_name="jobs")
    tiles_total = models.BigIntegerField(default=0)
    patches_total = models.BigIntegerField(default=0)
    summary = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def stage_display(self) -> str:
        return self.Stage(self.stage).label if self.stage in self.Stage.values else ""

    @property
    def tiles_done(self) -> int:
        if self.stage == self.Stage.EMBEDDING:
            return self.done
        return self.tiles_total if self.stage or self.status == self.Status.SUCCEEDED else 0

    @property
    def patches_done(self) -> int:
        if self.stage in (self.Stage.PREDICTING, self.Stage.TRAINING):
            return self.done
        return 0

    def stage_counts(self) -> tuple[int, int, str]:
        """(done, total, unit) of the stage in progress."""
        if self.stage == self.Stage.EMBEDDING or not self.stage:
            return self.tiles_done, self.tiles_total, "tiles"
        return self.done, self.total or self.patches_total, "patches"


# Similarity search keeps its models in their own module; importing them registers them.
from inference.similarity.models import (  # noqa: E402, F401
    Candidate,
    ClassPrototypes,
    SimilarityIndex,
    SimilarityJob,
)


class LabelIssue(models.Model):
    """A patch whose label confident learning flags as likely wrong, by one model version
    (cleanlab's ``find_label_issues`` over the version's out-of-fold probabilities).

    Rows only for flagged patches; written with the version's predictions by the worker.
    """

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE,
                                      related_name="label_issues")
    patch = models.ForeignKey(Patch, on_delete=models.CASCADE, related_name="label_issues")
    given_label = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")
    likely_label = models.ForeignKey(LabelClass, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "patch"], name="label_issue_once"),
        ]

    def __str__(self) -> str:
        return f"label issue on patch {self.patch_id} by model {self.model_version_id}"


class RetrainPolicy(models.Model):
    """When a project retrains by itself: a round after every ``every_settled`` settled
    decisions (0: only from the button). ``settled_at_last_round`` is the settled count when
    the last round was queued, so a trigger fires once per threshold however many reviewers
    cross it together (the row is locked to move it)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE,
                                   related_name="retrain_policy")
    every_settled = models.PositiveIntegerField(default=0)
    settled_at_last_round = models.PositiveIntegerField(default=0)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"retrain {self.project_id} every {self.every_settled} settled"
