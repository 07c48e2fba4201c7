"""API viewsets: declarations over querysets already restricted to the user's projects."""

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import viewsets
from rest_framework.decorators import api_view

from annotations.access import access_project
from annotations.api.jobs import ExportJobSerializer, JobControlMixin
from annotations.api.serializers import (
    ImportJobSerializer,
    LabelClassSerializer,
    PatchSerializer,
    ProjectSerializer,
)
from annotations.filters import PatchFilterSet
from annotations.models import ExportJob, ImportJob, LabelClass, Patch, Project
from annotations.views import tile_image


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ProjectSerializer
    lookup_field = "slug"

    def get_queryset(self):
        return Project.objects.restrict(self.request.user).annotate(
            patch_count=Count("patches")).order_by("id")


class ProjectScopedViewSet(viewsets.ReadOnlyModelViewSet):
    """Base for everything under /api/projects/<slug>/: the project is checked once here."""

    def initial(self, request, *args, **kwargs) -> None:
        super().initial(request, *args, **kwargs)
        request.project = access_project(request.user, kwargs["project_slug"])

    def get_queryset(self):
        return self.queryset.filter(project=self.request.project).order_by("id")


class LabelClassViewSet(ProjectScopedViewSet):
    queryset = LabelClass.objects.all()
    serializer_class = LabelClassSerializer


class PatchViewSet(ProjectScopedViewSet):
    queryset = Patch.objects.select_related("slide", "original_label", "current_label",
                                            "import_job")
    serializer_class = PatchSerializer
    filterset_class = PatchFilterSet


class ImportJobViewSet(JobControlMixin, ProjectScopedViewSet):
    queryset = ImportJob.objects.all()
    serializer_class = ImportJobSerializer


class ExportJobViewSet(JobControlMixin, ProjectScopedViewSet):
    queryset = ExportJob.objects.select_related("created_by")
    serializer_class = ExportJobSerializer


@extend_schema(responses={(200, "image/png"): OpenApiTypes.BINARY})
@api_view(["GET"])
def tile_image_api(request, tile_id: int):
    """The image bytes of one tile (any project the user is a member of)."""
    return tile_image(request._request, tile_id)
