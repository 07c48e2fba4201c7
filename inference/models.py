"""What the model side stores: backbones, cached tile embeddings, model versions, predictions.

Data flows one way (tiles -> embeddings -> predictions); annotations never imports this
module, and the queues read predictions through :mod:`inference.queries`.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone

from annotations.models import LabelClass, Patch, Project, Tile


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



class InferenceJob(models.Model):
    """Embed missing tiles, then predict (or train a head). Progress is kept per stage.

    State machine: pending -> embedding -> predicting | training -> succeeded, or failed at
    any stage. The Celery steps that do the work are idempotent and re-check what is
    missing, so a job whose worker died resumes where the database says it stopped.
    """

    class Kind(models.TextChoices):
        PREDICT = "predict", "Predict"
        TRAIN = "train", "Train head"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        EMBEDDING = "embedding", "Embedding tiles"
        PREDICTING = "predicting", "Predicting patches"
        TRAINING = "training", "Training head"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.PENDING, Status.EMBEDDING, Status.PREDICTING, Status.TRAINING)

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="inference_jobs")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    space = models.ForeignKey(EmbeddingSpace, on_delete=models.PROTECT, related_name="+")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.SET_NULL, null=True,
                                      blank=True, related_name="jobs")
    options = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    tiles_total = models.BigIntegerField(default=0)
    tiles_done = models.BigIntegerField(default=0)
    patches_total = models.BigIntegerField(default=0)
    patches_done = models.BigIntegerField(default=0)
    stage_started_at = models.DateTimeField(null=True, blank=True)
    stage_done_at_start = models.BigIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True,
                                        help_text="last sign of life from the worker")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} job {self.pk} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    def stage_counts(self) -> tuple[int, int, str]:
        """(done, total, unit) of the stage in progress."""
        if self.status == self.Status.EMBEDDING:
            return self.tiles_done, self.tiles_total, "tiles"
        return self.patches_done, self.patches_total, "patches"

    @property
    def percent(self) -> float | None:
        done, total, _ = self.stage_counts()
        return min(100.0, 100.0 * done / total) if total else None

    @property
    def rate(self) -> float | None:
        """Items per second in the current stage, since it started (or resumed)."""
        if not self.stage_started_at or not self.is_active:
            return None
        seconds = (timezone.now() - self.stage_started_at).total_seconds()
        done = self.stage_counts()[0] - self.stage_done_at_start
        return done / seconds if seconds > 0 and done > 0 else None

    @property
    def eta_seconds(self) -> float | None:
        rate = self.rate
        if not rate:
            return None
        done, total, _ = self.stage_counts()
        return max(0.0, (total - done) / rate)
