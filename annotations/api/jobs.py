"""What every job's API shares: its life-cycle fields, and cancel/resume (project admins)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from annotations import actions
from annotations.models import ExportJob, TrackedJob

STATES = [*TrackedJob.Status.values, TrackedJob.STALLED]

JOB_FIELDS = ["status", "state", "stage", "attempts", "created_at", "started_at",
              "heartbeat_at", "finished_at", "unit", "done", "total", "percent", "rate",
              "eta_seconds", "waiting_for_worker", "error"]


class JobSerializer(serializers.ModelSerializer):
    """Base of each job type's serializer: subclasses set Meta.model and add their fields."""

    state = serializers.ChoiceField(choices=STATES, read_only=True,
                                    help_text="status, or 'stalled': running with no "
                                              "heartbeat (its worker died); see heartbeat_at")
    percent = serializers.FloatField(read_only=True, allow_null=True)
    rate = serializers.FloatField(read_only=True, allow_null=True,
                                  help_text="units/s in the current stage")
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)
    waiting_for_worker = serializers.BooleanField(
        read_only=True, help_text="pending for a while: no worker has taken it up (none "
                                  "running for its queue, or all busy)")


class JobControlMixin:
    """``POST .../{id}/cancel/`` and ``.../{id}/resume/`` for a job viewset."""

    if TYPE_CHECKING:  # what the viewset this is mixed into provides
        def get_object(self) -> TrackedJob: ...

        def get_serializer(self, *args: Any, **kwargs: Any) -> serializers.BaseSerializer[Any]:
            ...

    def _control(self, request, operation) -> Response:
        job = self.get_object()
        try:
            operation(request.user, request.project, job)
        except DjangoValidationError as exc:
            raise ValidationError({"detail": " ".join(exc.messages)}) from exc
        job.refresh_from_db()
        return Response(self.get_serializer(job).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, *args, **kwargs) -> Response:
        """Cancel a pending or running job (project admins)."""
        return self._control(request, actions.cancel_job)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def resume(self, request, *args, **kwargs) -> Response:
        """Run a stalled or failed job again from what is stored (project admins)."""
        return self._control(request, actions.resume_job)


class ExportJobSerializer(JobSerializer):
    class Meta:
        model = ExportJob
        fields = ["id", "kind", "options", *JOB_FIELDS, "counts", "files"]
