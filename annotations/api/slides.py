"""Slides in the API: geometry of whole slides, the model's heatmap and tissue metrics."""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from annotations.api.views import ProjectScopedViewSet
from annotations.models import Slide
from annotations.slide_maps import heatmap_payload, metric_options, slide_map, tissue_metrics


class SlideSerializer(serializers.ModelSerializer):
    patch_count = serializers.IntegerField(read_only=True)
    whole_slide = serializers.BooleanField(source="is_whole_slide", read_only=True)

    class Meta:
        model = Slide
        fields = ["id", "name", "patch_count", "whole_slide", "vendor", "width", "height",
                  "mpp", "mpp_given", "tile_px", "tissue_mm2"]


def metrics_options(request: Request) -> tuple[float, int]:
    try:
        return metric_options(request.query_params)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


class SlideViewSet(ProjectScopedViewSet):
    queryset = Slide.objects.annotate(patch_count=Count("patches"))
    serializer_class = SlideSerializer

    def whole_slide(self) -> Slide:
        slide = self.get_object()
        if not slide.is_whole_slide:
            raise NotFound("this slide was imported as patches, not from a whole-slide image")
        return slide

    @extend_schema(responses={200: OpenApiTypes.OBJECT},
                   description="The active model's class per 224 px tile, as parallel arrays "
                               "(col, row, patch, label, confidence).")
    @action(detail=True)
    def heatmap(self, request: Request, project_slug: str, pk: str) -> Response:
        return Response(heatmap_payload(slide_map(self.whole_slide())))

    @extend_schema(
        parameters=[OpenApiParameter("threshold", float, description="confidence, 0..1"),
                    OpenApiParameter("min_cells", int, description="smallest area, in tiles")],
        responses={200: OpenApiTypes.OBJECT},
        description="Tissue area, area and share per predicted class, significant areas.")
    @action(detail=True)
    def metrics(self, request: Request, project_slug: str, pk: str) -> Response:
        threshold, min_cells = metrics_options(request)
        return Response(tissue_metrics(slide_map(self.whole_slide()), threshold=threshold,
                                       min_cells=min_cells))
