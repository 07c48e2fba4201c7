from django.contrib import admin

from annotations.models import (
    ImportJob,
    LabelClass,
    Membership,
    Patch,
    Project,
    ProjectSettingChange,
    Review,
    Slide,
    Tile,
)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


class ReadOnlyAdmin(admin.ModelAdmin):
    """Append-only records (reviews, settings changes): listed, never added, edited or
    deleted from the admin."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organ", "reviews_required", "created_at"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [MembershipInline, LabelClassInline]
    # Set on the project's settings page (/p/<slug>/settings/), which keeps an audit row and
    # re-derives the open patches; an edit here would do neither.
    readonly_fields = ["reviews_required", "audit_fraction", "lease_seconds"]


@admin.register(ProjectSettingChange)
class ProjectSettingChangeAdmin(ReadOnlyAdmin):
    """The settings page's audit rows: shown, never added, edited or deleted here."""

    list_display = ["project", "field", "old_value", "new_value", "changed_by", "changed_at"]
    list_filter = ["field"]


@admin.register(Slide)
class SlideAdmin(admin.ModelAdmin):
    list_display = ["name", "project"]
    list_filter = ["project"]
    search_fields = ["name"]


@admin.register(Patch)
class PatchAdmin(admin.ModelAdmin):
    list_display = ["image_name", "project", "split", "original_label", "current_label",
                    "status", "version"]
    list_filter = ["project", "status", "split"]
    search_fields = ["image_name"]
    raw_id_fields = ["slide", "centre_tile", "original_label", "current_label", "import_job"]
    readonly_fields = ["grid", "version", "current_label", "status"]  # changed by reviews only
    show_full_result_count = False


@admin.register(Tile)
class TileAdmin(admin.ModelAdmin):
    list_display = ["name", "sha256", "project", "linked"]
    search_fields = ["sha256", "name"]
    show_full_result_count = False


@admin.register(Review)
class ReviewAdmin(ReadOnlyAdmin):
    """Reviews are append-only and made by the review path only: the admin shows them and
    never adds, edits or deletes one (an added row would skip consensus and the version)."""

    list_display = ["patch", "reviewer", "action", "from_label", "to_label", "source",
                    "created_at"]
    list_filter = ["action", "source"]
    raw_id_fields = ["patch"]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ["project", "kind", "source", "status", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    readonly_fields = ["summary", "error"]


from annotations.models import ExportJob  # noqa: E402


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
    list_display = ["project", "kind", "status", "created_by", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    readonly_fields = ["options", "counts", "files", "result_file", "error"]
