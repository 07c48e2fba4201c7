from rest_framework import serializers

from annotations.api.jobs import JOB_FIELDS, JobSerializer
from annotations.models import ImportJob, LabelClass, Patch, Project


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField()
    patch_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Project
        fields = ["slug", "name", "organ", "description", "licence", "reviews_required",
                  "audit_fraction", "created_at", "role", "patch_count"]

    def get_role(self, project: Project) -> str | None:
        return project.role_of(self.context["request"].user)


class LabelClassSerializer(serializers.ModelSerializer):
    class Meta:
        model = LabelClass
        fields = ["id", "index", "name", "colour", "hotkey"]


class PatchSerializer(serializers.ModelSerializer):
    slide = serializers.CharField(source="slide.name")
    original_label = serializers.CharField(source="original_label.name", allow_null=True)
    current_label = serializers.CharField(source="current_label.name", allow_null=True)
    grid = serializers.ListField(child=serializers.IntegerField(allow_null=True),
                                 help_text="25 tile ids, row-major; null = missing context")
    centre_tile = serializers.IntegerField(source="centre_tile_id")
    import_unfinished = serializers.SerializerMethodField(
        help_text="the import that brought this patch has not finished (running, stalled, "
                  "failed or cancelled): more patches and context may still arrive; it can "
                  "be reviewed meanwhile")

    class Meta:
        model = Patch
        fields = ["id", "image_name", "slide", "split", "original_label", "current_label",
                  "status", "version", "centre_tile", "grid", "missing_context", "slide_x",
                  "slide_y", "import_unfinished", "created_at"]

    def get_import_unfinished(self, patch: Patch) -> bool:
        job = patch.import_job
        return job is not None and job.status != ImportJob.Status.SUCCEEDED


class ImportJobSerializer(JobSerializer):
    class Meta:
        model = ImportJob
        fields = ["id", "kind", "source", "options", *JOB_FIELDS, "summary"]
