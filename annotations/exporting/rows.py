"""One export row per patch: labels, review statistics and the model's opinion, in id order.

Rows are read in keyset-paged batches, so an export holds one batch in memory, however
large the project.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.db.models import QuerySet

from annotations.models import LabelClass, Patch, Project, Tile
from inference.queries import PatchOpinion, opinions

from .review_stats import ReviewStats, review_stats

BATCH = 1000


@dataclass(frozen=True)
class ClassList:
    """The project's classes in index order; a label's position is its ClassLabel value."""

    names: tuple[str, ...]
    position: dict[int, int]  # LabelClass id -> position in ``names``

    @classmethod
    def of(cls, project: Project) -> ClassList:
        classes = list(LabelClass.objects.filter(project=project).order_by("index")
                       .values_list("id", "name"))
        return cls(tuple(name for _, name in classes),
                   {pk: i for i, (pk, _) in enumerate(classes)})

    def index(self, label_id: int | None) -> int | None:
        return None if label_id is None else self.position[label_id]

    def name(self, label_id: int | None) -> str:
        return "" if label_id is None else self.names[self.position[label_id]]


@dataclass(frozen=True)
class ExportRow:
    patch_id: int
    image_name: str
    slide: str
    split: str
    original_label: int | None  # LabelClass ids
    current_label: int | None
    status: str
    centre_tile: int
    centre_file: Tile  # just enough of the tile to read it (file, linked)
    grid: tuple[int | None, ...]  # empty unless asked for
    stats: ReviewStats
    opinion: PatchOpinion | None
    slide_x: int | None = None  # level-0 position on a whole slide (None for imported data)
    slide_y: int | None = None


def iter_rows(project: Project, patches: QuerySet[Patch], *, grid: bool = False,
              batch: int = BATCH) -> Iterator[ExportRow]:
    """Rows of ``patches`` by increasing patch id."""
    fields = ["id", "image_name", "slide__name", "split", "original_label_id",
              "current_label_id", "status", "centre_tile_id", "centre_tile__file",
              "centre_tile__linked", "slide_x", "slide_y"] + (["grid"] if grid else [])
    last = 0
    while True:
        page = list(patches.filter(id__gt=last).order_by("id").values_list(*fields)[:batch])
        if not page:
            return
        ids = [row[0] for row in page]
        stats = review_stats(ids)
        said = opinions(project, ids)
        for row in page:
            patch_id, image_name, slide, split, original, current, status, centre_id = row[:8]
            centre = Tile(pk=centre_id, file=row[8], linked=row[9])
            yield ExportRow(patch_id, image_name, slide, split, original, current, status,
                            centre_id, centre_file=centre,
                            grid=tuple(row[12]) if grid else (),
                            stats=stats[patch_id], opinion=said.get(patch_id),
                            slide_x=row[10], slide_y=row[11])
        last = ids[-1]


def load_tiles(ids: set[int]) -> dict[int, Tile]:
    """Tile rows (where to read the bytes) for ``ids``."""
    found = Tile.objects.filter(pk__in=ids).only("id", "file", "linked", "name", "sha256")
    return {tile.pk: tile for tile in found}
