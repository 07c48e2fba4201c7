"""Review API: queues and their sizes, next items (leases), decisions, batches, skip, undo.

Thin views over :mod:`annotations.queues` and :mod:`annotations.reviewing`, the same entry
points the review page uses, so a script reviews exactly like the browser does.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotations.access import access_project
from annotations.models import Lease, Patch, Review, ReviewAction, ReviewSource
from annotations.permissions import Act, visible_reviews
from annotations.queues import (
    QUEUES,
    LeaseTaken,
    QueueError,
    QueueFilters,
    audit_estimate,
    elsewhere,
    filtered_size,
    lease_next,
    lease_patch,
    queue_sizes,
    skip,
)
from annotations.review_items import review_items
from annotations.reviewing import EXCLUDE_REASONS, Decision, StaleReview, submit
from inference.queries import one_active_version

from .fields import id_field, no_nul_characters, time_spent_field
from .views import ProjectScopedViewSet

MAX_BATCH = 200  # decisions per batch (grid mode sends a page of 48): each is a transaction


class DecisionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=ReviewAction.values)
    patch_version = serializers.IntegerField(min_value=1,
                                             help_text="the version the decision was made on")
    # DRF's serializer metaclass moves declared fields into _declared_fields, so this does not
    # replace Field.label (the field's display label), as the stubs take it to.
    label = id_field(  # type: ignore[assignment]
        required=False, allow_null=True, help_text="class id, for correct and adjudicate")
    reason = serializers.ChoiceField(choices=EXCLUDE_REASONS, required=False, default="")
    comment = serializers.CharField(required=False, default="", allow_blank=True)
    time_spent_ms = time_spent_field()
    model_version = serializers.CharField(required=False, default="", allow_blank=True)
    shown_probabilities = serializers.JSONField(required=False, allow_null=True,
                                                validators=[no_nul_characters])



def to_decision(d: dict, source: str = ReviewSource.SINGLE) -> Decision:
    return Decision(d["action"], d["patch_version"], d.get("label"), d.get("reason", ""),
                    d.get("comment", ""), d.get("time_spent_ms"), d.get("model_version", ""),
                    d.get("shown_probabilities"), source)


class BatchItemSerializer(DecisionSerializer):
    patch = id_field()


def json_object(request: Request) -> dict[str, Any]:
    """The request body as an object, or a 400 that says so (``[]``, ``"x"``, ``null`` are
    valid JSON but no request of this API)."""
    if not isinstance(request.data, dict):
        raise ValidationError({"detail": "the request body must be a JSON object"})
    return request.data


class LeaseOneSerializer(serializers.Serializer):
    queue = serializers.ChoiceField(choices=list(QUEUES), default="unreviewed")


class NextSerializer(serializers.Serializer):
    count = serializers.IntegerField(min_value=1, max_value=200, default=1)
    current_label = id_field(required=False)
    predicted_label = id_field(required=False)
    slide = id_field(required=False)
    split = serializers.ChoiceField(choices=["train", "test", ""], required=False)
    proposed_label = id_field(
        required=False, help_text="candidates queue: the class they were proposed as")


class QueueSizesQuery(serializers.Serializer):
    """The optional query of GET queues/: one queue and the review page's filters."""

    queue = serializers.ChoiceField(choices=list(QUEUES), required=False)
    current_label = id_field(required=False)
    predicted_label = id_field(required=False)
    slide = id_field(required=False)
    split = serializers.ChoiceField(choices=["train", "test", ""], required=False)
    proposed_label = id_field(required=False)


class PatchStateSerializer(serializers.ModelSerializer):
    """The schema of a decision's answer; :func:`_state` writes it (a ModelSerializer
    rebuilds its fields on every use, a cost each decision would pay)."""

    class Meta:
        model = Patch
        fields = ["id", "version", "status", "current_label", "decisions"]


class ReviewSerializer(serializers.ModelSerializer):
    reviewer = serializers.CharField(source="reviewer.username")

    class Meta:
        model = Review
        fields = ["id", "patch", "reviewer", "created_at", "action", "from_label", "to_label",
                  "reason", "comment", "patch_version", "time_spent_ms", "model_version",
                  "shown_probabilities", "source"]


def _state(patch: Patch) -> dict:
    """The patch as the decision left it (submit updated this instance under its lock), in
    the fields of :class:`PatchStateSerializer`."""
    return {"id": patch.pk, "version": patch.version, "status": patch.status,
            "current_label": patch.current_label_id, "decisions": patch.decisions}


def _decide(request, project, patch_id: int, decision: Decision) -> Response:
    try:
        patch = submit(project, request.user, patch_id, decision)
    except StaleReview as exc:
        return Response({"detail": str(exc), "patch": _state(exc.patch)},
                        status=status.HTTP_409_CONFLICT)
    except DjangoValidationError as exc:
        raise ValidationError({"detail": " ".join(exc.messages)}) from exc
    return Response({"patch": _state(patch)}, status=status.HTTP_201_CREATED)


@extend_schema(parameters=[QueueSizesQuery], responses=inline_serializer("QueueSizes", {
    "sizes": serializers.DictField(child=serializers.IntegerField(allow_null=True)),
    "audit": serializers.DictField(),
    "filtered": inline_serializer("FilteredSize", {
        "queue": serializers.CharField(),
        "size": serializers.IntegerField(allow_null=True)}, required=False)}))
@api_view(["GET"])
def queues(request, project_slug: str):
    """Items left in each queue (null: needs a model) and the audit sample's error estimate;
    with ``queue`` and a filter (the review page's), also the size of that queue with those
    filters (``filtered``), since "N of M left" counts what the reviewer works through."""
    project = access_project(request.user, project_slug)
    body: dict[str, object] = {"sizes": queue_sizes(project),
                               "audit": vars(audit_estimate(project))}
    query = QueueSizesQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    d = query.validated_data
    filters = QueueFilters(d.get("current_label"), d.get("predicted_label"), d.get("slide"),
                           d.get("split"), d.get("proposed_label"))  # as next reads them
    if d.get("queue") and filters != QueueFilters():
        body["filtered"] = {"queue": d["queue"],
                            "size": filtered_size(project, d["queue"], filters)}
    return Response(body)


QUEUE_PARAMETER = OpenApiParameter("queue", OpenApiTypes.STR, OpenApiParameter.PATH,
                                   enum=list(QUEUES), description="which queue")


@extend_schema(parameters=[QUEUE_PARAMETER], request=NextSerializer, responses=inline_serializer(
    "NextItems", {"items": serializers.ListField(child=serializers.DictField()),
                  "elsewhere": inline_serializer("Elsewhere", {
                      "held_by_others": serializers.IntegerField(),
                      "free_at": serializers.DateTimeField(allow_null=True),
                      "skipped_by_you": serializers.IntegerField()}, required=False,
                      help_text="when fewer items than asked came back: why")}))
@api_view(["POST"])
def next_items(request, project_slug: str, queue: str):
    """Lease the next ``count`` items of a queue to you (your held ones first)."""
    project = access_project(request.user, project_slug, Act.REVIEW)
    if queue not in QUEUES:
        raise ValidationError({"detail": f"unknown queue {queue!r}"})
    params = NextSerializer(data=json_object(request))
    params.is_valid(raise_exception=True)
    d = params.validated_data
    filters = QueueFilters(d.get("current_label"), d.get("predicted_label"), d.get("slide"),
                           d.get("split"), d.get("proposed_label"))
    with one_active_version():  # the queue, its items and their opinions: one version
        try:
            leases = lease_next(project, request.user, queue, d["count"], filters)
        except QueueError as exc:
            raise ValidationError({"detail": str(exc)}) from exc
        body: dict[str, object] = {"items": review_items(project, leases,
                                                         d.get("proposed_label"))}
        if len(leases) < d["count"]:  # say why the rest is not for you (the page shows it)
            body["elsewhere"] = vars(elsewhere(project, request.user, queue, filters))
    return Response(body)


DecisionResult = inline_serializer("DecisionResult", {"patch": PatchStateSerializer()})
StaleDecision = inline_serializer("StaleDecision", {"detail": serializers.CharField(),
                                                     "patch": PatchStateSerializer()})


@extend_schema(request=DecisionSerializer, responses={
    201: DecisionResult,
    409: OpenApiResponse(StaleDecision, description="stale: the patch changed since")})
@api_view(["POST"])
def review_patch(request, project_slug: str, patch_id: int):
    """Record a decision (confirm, correct, unsure, exclude, comment, undo, adjudicate,
    reopen) made on ``patch_version``; 409 if the patch changed since."""
    project = access_project(request.user, project_slug, Act.REVIEW)
    body = DecisionSerializer(data=json_object(request))
    body.is_valid(raise_exception=True)
    return _decide(request, project, patch_id, to_decision(body.validated_data))


@extend_schema(request=inline_serializer("Batch", {
                   # DRF passes max_length to the ListSerializer; its stubs do not know it
                   "decisions": BatchItemSerializer(  # type: ignore[call-arg]
                       many=True, max_length=MAX_BATCH)}),
               responses=inline_serializer("BatchResult", {
                   "results": serializers.ListField(child=serializers.DictField())}))
@api_view(["POST"])
def review_batch(request, project_slug: str):
    """Several decisions (grid mode), each answered on its own, in the order sent: its status
    (201, 400, 403, 409) and the patch's state, so a refused item never hides an applied one."""
    project = access_project(request.user, project_slug, Act.REVIEW)
    body = BatchItemSerializer(  # type: ignore[call-arg]  # (see the schema above)
        data=json_object(request).get("decisions", []), many=True, max_length=MAX_BATCH)
    body.is_valid(raise_exception=True)
    results = []
    for item in body.validated_data:
        try:
            response = _decide(request, project, item["patch"],
                               to_decision(item, ReviewSource.BATCH))
            results.append({"patch": item["patch"], "status": response.status_code,
                            **response.data})
        except ValidationError as exc:
            detail = exc.detail if isinstance(exc.detail, dict) else {"detail": exc.detail}
            results.append({"patch": item["patch"], "status": 400, **detail})
        except PermissionDenied as exc:  # this item refused; the others stand on their own
            results.append({"patch": item["patch"], "status": 403, "detail": str(exc)})
    return Response({"results": results})


@extend_schema(request=LeaseOneSerializer, responses={
    200: inline_serializer("Item", {"item": serializers.DictField()}),
    404: OpenApiResponse(description="no such patch in the project"),
    409: OpenApiResponse(description="another reviewer holds the patch (until when)")})
@api_view(["POST"])
def lease_one(request, project_slug: str, patch_id: int):
    """Hold this patch for you (after an undo, to decide it again) and return its item."""
    project = access_project(request.user, project_slug, Act.REVIEW)
    body = LeaseOneSerializer(data=json_object(request))
    body.is_valid(raise_exception=True)
    if not Patch.objects.filter(project=project, pk=patch_id).exists():
        raise NotFound(f"No patch {patch_id} in project {project.slug}")
    try:
        lease = lease_patch(project, request.user, patch_id, body.validated_data["queue"])
    except LeaseTaken as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    except QueueError as exc:
        raise ValidationError({"detail": str(exc)}) from exc
    with one_active_version():
        return Response({"item": review_items(project, [lease])[0]})


@extend_schema(request=None, responses={204: None})
@api_view(["POST"])
def skip_patch(request, project_slug: str, patch_id: int):
    """Give a leased item back to the others; you will not get it again for a while."""
    project = access_project(request.user, project_slug, Act.REVIEW)
    skip(project, request.user, patch_id)
    return Response(status=status.HTTP_204_NO_CONTENT)


class LeaseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Lease
        fields = ["id", "patch", "queue", "created_at", "expires_at", "skipped"]


class LeaseViewSet(ProjectScopedViewSet):
    """Your live leases in this project."""

    queryset = Lease.objects.all()
    serializer_class = LeaseSerializer

    def get_queryset(self):
        return Lease.objects.filter(patch__project=self.request.project,
                                    reviewer=self.request.user,
                                    expires_at__gt=timezone.now()).order_by("id")


class ReviewViewSet(ProjectScopedViewSet):
    """The review history. Reviewers see their own decisions, and everyone's on settled
    patches, so an open double read stays blind; admins see everything."""

    queryset = Review.objects.all()
    serializer_class = ReviewSerializer
    filterset_fields = ["patch", "action"]

    def get_queryset(self):
        reviews = Review.objects.filter(patch__project=self.request.project).select_related(
            "reviewer").order_by("id")
        return visible_reviews(self.request.user, self.request.project, reviews)
