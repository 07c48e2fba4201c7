"""API for the active-learning loop: the rounds' history, the retraining policy, a round
now, and the patches confident learning flags (``/api/projects/<slug>/rounds/`` ...)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotations.access import access_project
from annotations.models import Project
from annotations.permissions import Act
from inference.actions import JobError, set_retrain_policy, start_round
from inference.api import InferenceJobSerializer
from inference.history import rounds
from inference.models import LabelIssue, ModelVersion
from inference.queries import active_version, crowd_quality
from inference.rounds import policy_of, settled_count


class RoundSerializer(serializers.Serializer):
    version = serializers.CharField()
    version_id = serializers.IntegerField()
    created_at = serializers.CharField()
    trigger = serializers.CharField()
    active = serializers.BooleanField()
    activated = serializers.BooleanField(allow_null=True)
    activation = serializers.CharField()
    labels_used = serializers.IntegerField()
    settled = serializers.IntegerField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    balanced_accuracy = serializers.FloatField(allow_null=True)
    weighted_f1 = serializers.FloatField(allow_null=True)
    audit_rate = serializers.FloatField(allow_null=True)
    audit_low = serializers.FloatField(allow_null=True)
    audit_high = serializers.FloatField(allow_null=True)
    remaining_errors = serializers.DictField(child=serializers.IntegerField())
    remaining_total = serializers.IntegerField(allow_null=True)
    queue_shown = serializers.IntegerField()
    queue_corrected = serializers.IntegerField()
    queue_precision = serializers.FloatField(allow_null=True)
    decisions = serializers.IntegerField()
    decisions_per_hour = serializers.FloatField(allow_null=True)


class PolicySerializer(serializers.Serializer):
    every_settled = serializers.IntegerField(min_value=0, max_value=1_000_000,
                                             help_text="0: rounds only when asked")
    settled_at_last_round = serializers.IntegerField(read_only=True)
    settled = serializers.IntegerField(read_only=True)


class LabelIssueSerializer(serializers.ModelSerializer):
    patch = serializers.IntegerField(source="patch_id")
    image_name = serializers.CharField(source="patch.image_name")
    given_label = serializers.CharField(source="given_label.name")
    likely_label = serializers.CharField(source="likely_label.name")

    class Meta:
        model = LabelIssue
        fields = ["patch", "image_name", "given_label", "likely_label"]


class RoundsView(APIView):
    """Every trained version, oldest first, with what each round measured."""

    @extend_schema(responses=RoundSerializer(many=True))
    def get(self, request: Request, project_slug: str) -> Response:
        project = access_project(request.user, project_slug)
        return Response([row.as_json() for row in rounds(project)])

    @extend_schema(request=None, responses={201: InferenceJobSerializer})
    def post(self, request: Request, project_slug: str) -> Response:
        """Queue a round now (project admins); 400 if a training job is live."""
        project = access_project(request.user, project_slug, Act.RUN_MODELS)
        try:
            job = start_round(project, user=request.user)
        except JobError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        return Response(InferenceJobSerializer(job).data, status=status.HTTP_201_CREATED)


class PolicyView(APIView):
    """When the project retrains by itself."""

    def _answer(self, project: Project) -> Response:
        policy = policy_of(project)
        return Response({"every_settled": policy.every_settled,
                         "settled_at_last_round": policy.settled_at_last_round,
                         "settled": settled_count(project)})

    @extend_schema(responses=PolicySerializer)
    def get(self, request: Request, project_slug: str) -> Response:
        return self._answer(access_project(request.user, project_slug))

    @extend_schema(request=PolicySerializer, responses=PolicySerializer)
    def put(self, request: Request, project_slug: str) -> Response:
        project = access_project(request.user, project_slug, Act.MANAGE_SETTINGS)
        given = PolicySerializer(data=request.data)
        given.is_valid(raise_exception=True)
        set_retrain_policy(project, given.validated_data["every_settled"], request.user)
        return self._answer(project)


class LabelIssuesView(APIView):
    """Patches confident learning flags as likely mislabelled, by the active version (or
    ``?model=<name>``); ``?patch=<id>`` for one patch (an empty list: not flagged)."""

    @extend_schema(responses=LabelIssueSerializer(many=True))
    def get(self, request: Request, project_slug: str) -> Response:
        project = access_project(request.user, project_slug)
        name = request.query_params.get("model")
        version = (ModelVersion.objects.filter(project=project, name=name).first() if name
                   else active_version(project))
        if version is None:
            return Response([])
        issues = (LabelIssue.objects.filter(model_version=version)
                  .select_related("patch", "given_label", "likely_label").order_by("patch_id"))
        patch = request.query_params.get("patch", "")
        if patch:
            if not patch.isdigit():
                raise ValidationError({"patch": "a patch id"})
            issues = issues.filter(patch_id=int(patch))
        return Response(LabelIssueSerializer(issues, many=True).data)


class CrowdView(APIView):
    """CROWDLAB reviewer quality and consensus, and ActiveLab's patches for one more read,
    as computed when the active version was trained ({} before double reads: DRF renders
    None as an empty body, which is no JSON)."""

    @extend_schema(responses={200: dict})
    def get(self, request: Request, project_slug: str) -> Response:
        project = access_project(request.user, project_slug)
        return Response(crowd_quality(project) or {})
