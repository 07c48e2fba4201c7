"""Similarity API: "more like this", similarity jobs, and answers to candidates. Thin views
over :mod:`inference.similarity.search`, ``actions`` and ``candidates``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotations.access import access_project
from annotations.api.fields import id_field, time_spent_field
from annotations.models import Patch, PatchStatus
from annotations.permissions import Act
from annotations.reviewing import StaleReview
from inference.similarity import actions
from inference.similarity.candidates import ANSWERS, Answer, answer
from inference.similarity.models import SimilarityJob
from inference.similarity.search import (
    IndexNotReady,
    NoPrototype,
    Similar,
    SimilarFilters,
    UnknownSeed,
    by_prototype,
    current_index,
    is_stale,
    more_like_this,
)
from inference.similarity.vectors import project_space

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class SimilarQuery(serializers.Serializer):
    seeds = serializers.CharField(required=False, help_text="seed patch ids, comma-separated")
    prototype = serializers.IntegerField(
        required=False, help_text="instead of seeds: a class, whose patches come ordered by "
        "cosine to its prototype (needs the prototypes job)")
    order = serializers.ChoiceField(choices=["typical", "atypical"], default="typical",
                                    help_text="with prototype: most typical or most "
                                    "atypical first")
    k = serializers.IntegerField(min_value=1, max_value=500, default=24)
    slide = serializers.IntegerField(required=False)
    split = serializers.ChoiceField(choices=["train", "test", ""], required=False)
    status = serializers.ChoiceField(choices=PatchStatus.values, required=False)
    label = serializers.IntegerField(  # type: ignore[assignment]
        required=False, min_value=0, help_text="current label (class id); 0 = unlabelled")

    def validate_seeds(self, value: str) -> list[int]:
        parts = [p for p in value.replace(" ", "").split(",") if p]
        if not parts or not all(p.isdigit() for p in parts) or len(parts) > 100:
            raise serializers.ValidationError("1 to 100 patch ids, comma-separated")
        return [int(p) for p in parts]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("seeds" in attrs) == ("prototype" in attrs):
            raise serializers.ValidationError("give seeds or prototype (one of them)")
        return attrs


def _rows(project_slug: str, found: list[Similar]) -> list[dict[str, Any]]:
    patches = {p.pk: p for p in Patch.objects.filter(pk__in=[f.patch_id for f in found])
               .select_related("slide", "current_label")}
    rows = []
    for f in found:
        if (p := patches.get(f.patch_id)) is None:
            continue  # deleted since the index was built
        rows.append({
            "patch": p.pk, "similarity": f.similarity, "image_name": p.image_name,
            "slide": p.slide.name, "split": p.split, "status": p.status,
            "current_label": p.current_label.name if p.current_label else None,
            "tile": reverse("tile-image", args=[p.centre_tile_id]),
            "url": reverse("patch-detail", args=[project_slug, p.pk])})
    return rows


@extend_schema(parameters=[SimilarQuery], responses={
    200: inline_serializer("Similar", {"results": serializers.ListField(
        child=serializers.DictField()), "index": serializers.DictField()}),
    409: OpenApiResponse(description="no index yet: one is being built")})
@api_view(["GET"])
def similar(request: Request, project_slug: str) -> Response:
    """The ``k`` patches most like the seeds (their mean), best first, with the cosine
    similarity; filter by slide, split, status and current label (0: unlabelled). With
    ``prototype`` instead: that class's patches by cosine to its prototype, the most typical
    (or with ``order=atypical`` the most atypical) first."""
    project = access_project(request.user, project_slug)
    query = SimilarQuery(data=request.query_params)
    query.is_valid(raise_exception=True)
    d = query.validated_data
    filters = SimilarFilters(d.get("slide"), d.get("split"), d.get("status"), d.get("label"))
    try:
        if "prototype" in d:
            found = by_prototype(project, d["prototype"], d["k"], d["order"] == "atypical",
                                 filters)
        else:
            found = more_like_this(project, d["seeds"], d["k"], filters)
    except NoPrototype as exc:
        raise ValidationError({"prototype": str(exc)}) from exc
    except IndexNotReady as exc:
        if project_space(project) is None:  # nothing embedded: a job would only fail
            return Response({"detail": f"project {project.slug!r} has no embeddings yet: "
                             "predict or train a head first (they embed every tile)"},
                            status=status.HTTP_409_CONFLICT)
        job = actions.ensure_index(project)
        return Response({"detail": f"{exc}; it is being built, ask again in a moment",
                         "job": job.pk if job else None}, status=status.HTTP_409_CONFLICT)
    except UnknownSeed as exc:
        raise ValidationError({"seeds": str(exc)}) from exc
    row = current_index(project)
    assert row is not None
    stale = is_stale(project, row)
    if stale:
        actions.ensure_index(project)  # patches arrived since: bring the index up to date
    return Response({"results": _rows(project.slug, found),
                     "index": {"size": row.size, "space": str(row.space), "stale": stale}})


class JobSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True)
    percent = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = SimilarityJob
        fields = ["id", "kind", "status", "state", "stage", "done", "total", "unit", "percent",
                  "options", "summary", "error", "created_at", "finished_at"]


class StartSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=SimilarityJob.Kind.values)
    label = serializers.IntegerField(  # type: ignore[assignment]
        required=False, help_text="candidates: the class")
    seeds = serializers.ListField(child=serializers.IntegerField(), required=False,
                                  help_text="candidates: seed patch ids (default: all "
                                  "settled patches of the class)")
    k = serializers.IntegerField(required=False, default=50, min_value=1,
                                 max_value=actions.MAX_K)


@extend_schema(methods=["GET"], responses=JobSerializer(many=True))
@extend_schema(methods=["POST"], request=StartSerializer, responses={201: JobSerializer})
@api_view(["GET", "POST"])
def similarity_jobs(request: Request, project_slug: str) -> Response:
    """The project's similarity jobs (newest first); POST starts one: ``index`` and
    ``prototypes`` for admins, ``candidates`` (``label``, ``seeds``, ``k``) for reviewers."""
    if request.method == "GET":
        project = access_project(request.user, project_slug)
        jobs = SimilarityJob.objects.filter(project=project)[:50]
        return Response(JobSerializer(jobs, many=True).data)
    project = access_project(request.user, project_slug, Act.REVIEW)
    if not isinstance(request.data, dict):
        raise ValidationError({"detail": "the request body must be a JSON object"})
    body = StartSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    d = body.validated_data
    try:
        if d["kind"] == SimilarityJob.Kind.INDEX:
            job = actions.start_index(project, request.user)
        elif d["kind"] == SimilarityJob.Kind.PROTOTYPES:
            job = actions.start_prototypes(project, request.user)
        else:
            if "label" not in d:
                raise ValidationError({"label": "candidates need the class"})
            job = actions.start_candidates(project, d["label"], seeds=d.get("seeds"),
                                           k=d["k"], user=request.user)
    except actions.SimilarityJobError as exc:
        raise ValidationError({"detail": str(exc)}) from exc
    job.refresh_from_db()
    return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class AnswerSerializer(serializers.Serializer):
    proposed = id_field(help_text="the class the patch was proposed as")
    answer = serializers.ChoiceField(choices=ANSWERS)
    patch_version = serializers.IntegerField(min_value=1)
    # DRF's metaclass moves declared fields aside; see annotations.api.reviews.
    label = id_field(  # type: ignore[assignment]
        required=False, allow_null=True, help_text="for 'other': the class it is")
    time_spent_ms = time_spent_field()


@extend_schema(request=AnswerSerializer, parameters=[OpenApiParameter("patch_id", int,
                                                                      OpenApiParameter.PATH)],
               responses={201: OpenApiResponse(description="the patch's state"),
                          409: OpenApiResponse(description="stale: the patch changed")})
@api_view(["POST"])
def answer_candidate(request: Request, project_slug: str, patch_id: int) -> Response:
    """Answer a candidate: ``yes`` (it is the proposed class), ``no`` (never proposed as that
    class again) or ``other`` with the class it is."""
    project = access_project(request.user, project_slug, Act.REVIEW)
    if not isinstance(request.data, dict):
        raise ValidationError({"detail": "the request body must be a JSON object"})
    body = AnswerSerializer(data=request.data)
    body.is_valid(raise_exception=True)
    d = body.validated_data
    try:
        patch = answer(project, cast("User", request.user), patch_id, Answer(
            d["proposed"], d["answer"], d["patch_version"], d.get("label"),
            d.get("time_spent_ms")))
    except StaleReview as exc:
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    except DjangoValidationError as exc:
        raise ValidationError({"detail": " ".join(exc.messages)}) from exc
    return Response({"patch": {"id": patch.pk, "version": patch.version, "status": patch.status,
                               "current_label": patch.current_label_id}},
                    status=status.HTTP_201_CREATED)
