"""FilterSets shared by the pages and the API."""

import django_filters
from django import forms
from django.db.models import Max, Min, QuerySet

from annotations.models import LabelClass, Patch, PatchStatus, Project, Slide, Split


def within_project_ids(patches: QuerySet[Patch], project: Project) -> QuerySet[Patch]:
    """``patches`` bounded by the project's first and last patch id (one query on the
    (project, id) index, first). An id-ordered page may be read by walking the primary key,
    and the planner does not know that a project's ids are one run: without the bounds, the
    first page of a project imported after another walks all of that other project's rows
    first, and the last page those of the projects after it. The bounds are constants, not
    subqueries, so that the planner estimates the rows they keep from its statistics."""
    bounds = Patch.objects.filter(project=project).aggregate(low=Min("id"), high=Max("id"))
    if bounds["low"] is None:
        return patches
    return patches.filter(id__gte=bounds["low"], id__lte=bounds["high"])


class PatchFilterSet(django_filters.FilterSet):
    """Filters of the patch browser; every one is backed by a (project, field, id) index."""

    current_label = django_filters.ModelChoiceFilter(queryset=LabelClass.objects.none(),
                                                     label="Current label")
    original_label = django_filters.ModelChoiceFilter(queryset=LabelClass.objects.none(),
                                                      label="Original label")
    status = django_filters.ChoiceFilter(choices=PatchStatus.choices)
    split = django_filters.ChoiceFilter(choices=[c for c in Split.choices if c[0]])
    # A slide id, not a menu: a SPIDER organ has thousands of slides, and a <select> of
    # them all made the patch browser grow with the project (slide_name finds one by name).
    slide = django_filters.ModelChoiceFilter(
        queryset=Slide.objects.none(), label="Slide (id)",
        widget=forms.NumberInput(attrs={"min": 1, "style": "width:6em"}))
    slide_name = django_filters.CharFilter(field_name="slide__name", label="Slide name")

    class Meta:
        model = Patch
        fields = ["current_label", "original_label", "status", "split", "slide", "slide_name"]

    def __init__(self, *args, project=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if project is None and self.request is not None:
            project = getattr(self.request, "project", None)
        if project is not None:
            classes = LabelClass.objects.filter(project=project)
            self.filters["current_label"].queryset = classes
            self.filters["original_label"].queryset = classes
            self.filters["slide"].queryset = Slide.objects.filter(project=project)
