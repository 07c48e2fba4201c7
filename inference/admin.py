from django.contrib import admin

from inference.models import EmbeddingSpace, InferenceJob, ModelVersion, Prediction


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    list_display = ["backbone", "weights_sha256", "embed_dim", "weights_path", "created_at"]


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "space", "head_kind", "source", "is_active", "created_at"]
    list_filter = ["project", "source", "is_active"]
    readonly_fields = ["space", "head_file", "head_sha256", "head_config", "class_names",
                       "training", "metrics"]


@admin.register(InferenceJob)
class InferenceJobAdmin(admin.ModelAdmin):
    list_display = ["id", "project", "kind", "status", "stage", "done", "total",
                    "heartbeat_at", "created_at"]
    list_filter = ["project", "kind", "status"]


@admin.register(Prediction)
class PredictionAdmin(admin.ModelAdmin):
    list_display = ["patch", "model_version", "predicted", "confidence", "label_quality",
                    "disagree"]
    list_filter = ["model_version", "disagree"]
    raw_id_fields = ["patch"]

    def has_change_permission(self, request, obj=None) -> bool:
        return False
