"""Which patches an export holds, in which fixed order, and the checks made before writing."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, QuerySet

from annotations.models import Patch, PatchStatus, Project, Split

from .errors import ExportError

# Splits are written in this order; "" (no split, e.g. a flat ImageFolder) is named "unsplit".
SPLIT_ORDER = (Split.TRAIN.value, Split.TEST.value, Split.NONE.value)
ALL_STATUSES = tuple(PatchStatus.values)
DEFAULT_STATUSES = tuple(s for s in ALL_STATUSES if s != PatchStatus.EXCLUDED)


def split_name(split: str) -> str:
    return split or "unsplit"


def parse_statuses(text: str | list[str] | None,
                   default: tuple[str, ...] = DEFAULT_STATUSES) -> tuple[str, ...]:
    """Statuses from ``"confirmed,corrected"`` (or a list), in PatchStatus order."""
    if not text:
        return default
    given = [s.strip() for s in (text.split(",") if isinstance(text, str) else text)]
    unknown = [s for s in given if s not in ALL_STATUSES]
    if unknown or not any(given):
        named = ", ".join(map(repr, unknown or given))
        raise ExportError(f"unknown review status {named}; known: {', '.join(ALL_STATUSES)}")
    return tuple(s for s in ALL_STATUSES if s in given)


@dataclass(frozen=True)
class ExportFilter:
    statuses: tuple[str, ...] = DEFAULT_STATUSES

    def describe(self) -> str:
        if self.statuses == ALL_STATUSES:
            return "all review statuses"
        return "review status in " + ", ".join(self.statuses)


def selected(project: Project, export_filter: ExportFilter) -> QuerySet[Patch]:
    """The patches an export writes. Unlabelled ones (tissue from a whole slide nobody has
    classified yet) are not records of a dataset and are left out of every format."""
    patches = Patch.objects.filter(project=project).exclude(current_label=None)
    if export_filter.statuses != ALL_STATUSES:
        patches = patches.filter(status__in=export_filter.statuses)
    return patches


def split_counts(patches: QuerySet[Patch]) -> dict[str, int]:
    """{split: patches} in SPLIT_ORDER, splits without patches left out."""
    found = dict(patches.order_by().values_list("split").annotate(n=Count("id")))
    return {split: found[split] for split in SPLIT_ORDER if found.get(split)}


def check_slide_splits(patches: QuerySet[Patch]) -> None:
    """Refuse an export in which one slide has patches in two splits (train/test leakage)."""
    mixed = list(patches.order_by().values("slide__name")
                 .annotate(n=Count("split", distinct=True)).filter(n__gt=1)
                 .values_list("slide__name", flat=True).order_by("slide__name")[:11])
    if not mixed:
        return
    details = []
    for name in mixed[:10]:
        splits = sorted({split_name(s) for s in patches.filter(slide__name=name)
                         .values_list("split", flat=True).distinct()})
        details.append(f"{name!r} ({' and '.join(splits)})")
    more = " and more" if len(mixed) > 10 else ""
    raise ExportError("a slide may be in one split only, but these slides have patches in "
                      f"several: {', '.join(details)}{more}. Fix the splits before exporting.")


def exportable(project: Project, export_filter: ExportFilter
               ) -> tuple[QuerySet[Patch], dict[str, int]]:
    """The filtered patches and their counts per split, refused when a slide spans two splits
    or nothing matches (each export format starts here)."""
    patches = selected(project, export_filter)
    check_slide_splits(patches)
    splits = split_counts(patches)
    if not splits:
        raise ExportError(f"no patch of {project.slug!r} matches the filter "
                          f"({export_filter.describe()})")
    return patches, splits
