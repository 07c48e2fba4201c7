"""API for models: versions (list, activate) and jobs (list, follow, start predict/train)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from annotations.access import access_project
from annotations.api.jobs import JOB_FIELDS, JobControlMixin, JobSerializer
from annotations.api.views import ProjectScopedViewSet
from annotations.permissions import Act
from inference.actions import JobError, activate, start_predict, start_round, start_train
from inference.models import InferenceJob, ModelVersion
from inference.options import TrainOptions


class ModelVersionSerializer(serializers.ModelSerializer):
    backbone = serializers.CharField(source="space.backbone", read_only=True)
    backbone_weights_sha256 = serializers.CharField(source="space.weights_sha256",
                                                    read_only=True)

    class Meta:
        model = ModelVersion
        fields = ["id", "name", "backbone", "backbone_weights_sha256", "head_kind",
                  "head_sha256", "class_names", "source", "source_detail", "training",
                  "metrics", "is_active", "created_at"]


class InferenceJobSerializer(JobSerializer):
    model_version: serializers.SlugRelatedField[ModelVersion] = serializers.SlugRelatedField(
        slug_field="name", read_only=True, allow_null=True)
    embedding_space = serializers.CharField(source="space", read_only=True, allow_null=True,
                                            help_text="null until a worker resolves the "
                                                      "backbone the job names")
    tiles_done = serializers.IntegerField(read_only=True)
    patches_done = serializers.IntegerField(read_only=True)

    class Meta:
        model = InferenceJob
        fields = ["id", "kind", "model_version", "embedding_space", "options", *JOB_FIELDS,
                  "tiles_done", "tiles_total", "patches_done", "patches_total", "summary"]


class StartJobSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=InferenceJob.Kind.choices)
    model = serializers.CharField(required=False, help_text="predict: version name "
                                  "(default: the active one)")
    epochs = serializers.IntegerField(required=False, min_value=1, max_value=200,
                                      allow_null=True, default=None,
                                      help_text="train: most epochs (default: for the size)")
    batch_size = serializers.IntegerField(required=False, min_value=1, max_value=4096,
                                          allow_null=True, default=None)
    lr = serializers.FloatField(required=False, min_value=1e-7, max_value=1.0,
                                allow_null=True, default=None)
    patience = serializers.IntegerField(required=False, min_value=0, max_value=100,
                                        allow_null=True, default=None,
                                        help_text="early stopping (0: off)")
    repeats = serializers.IntegerField(required=False, min_value=1, max_value=10,
                                       allow_null=True, default=None,
                                       help_text="out-of-fold runs averaged (default: for the "
                                                 "size)")
    force_activate = serializers.BooleanField(required=False, default=False,
                                              help_text="activate even if worse")
    folds = serializers.IntegerField(required=False, min_value=2, max_value=20, default=5)
    head = serializers.ChoiceField(choices=["context", "centre"], required=False,
                                   default="context")


class ModelVersionViewSet(ProjectScopedViewSet):
    queryset = ModelVersion.objects.select_related("space")
    serializer_class = ModelVersionSerializer

    @extend_schema(request=None, responses=ModelVersionSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, project_slug: str, pk: str):
        """Make this version the one the queues and review page use (project admins)."""
        version = self.get_object()
        activate(request.project, version, request.user)
        return Response(ModelVersionSerializer(version).data)


class InferenceJobViewSet(JobControlMixin, mixins.CreateModelMixin, ProjectScopedViewSet):
    queryset = InferenceJob.objects.select_related("model_version", "space")
    serializer_class = InferenceJobSerializer

    @extend_schema(request=StartJobSerializer, responses={201: InferenceJobSerializer})
    def create(self, request, project_slug: str):
        """Queue a predict, train or round job (project admins); poll the job for progress.
        Training options left out are chosen for the project's size."""
        project = access_project(request.user, project_slug, Act.RUN_MODELS)
        start = StartJobSerializer(data=request.data)
        start.is_valid(raise_exception=True)
        data = start.validated_data
        try:
            if data["kind"] == InferenceJob.Kind.PREDICT:
                job = start_predict(project, model=data.get("model"), user=request.user)
            elif data["kind"] == InferenceJob.Kind.ROUND:
                job = start_round(project, user=request.user)
            else:
                options = TrainOptions(epochs=data["epochs"], batch_size=data["batch_size"],
                                       lr=data["lr"], patience=data["patience"],
                                       repeats=data["repeats"], folds=data["folds"],
                                       head=data["head"], force_activate=data["force_activate"])
                job = start_train(project, options, user=request.user)
        except JobError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(InferenceJobSerializer(job).data, status=status.HTTP_201_CREATED)
