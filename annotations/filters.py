"""FilterSets shared by the pages and the API."""

import django_filters
from django import forms

from annotations.models import LabelClass, Patch, PatchStatus, Slide, Split


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
    slide_name = django_filters.CharFilter(field_name="slide__name", label="Slide id")

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
