"""A whole slide as the model sees it: one heatmap cell per 224 px tile, and tissue metrics.

The metrics follow the SPIDER paper's "quantitative tissue metrics": tissue area, the area
and share of each predicted class, and the *significant areas*, connected regions (8-way)
of cells of one class whose confidence reaches a threshold, largest first.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from annotations.models import LabelClass, Slide
from inference.queries import active_version, slide_predictions

DEFAULT_THRESHOLD = 0.8
DEFAULT_MIN_CELLS = 2
MAX_AREAS = 50


@dataclass(frozen=True)
class Cell:
    col: int
    row: int
    patch_id: int
    label_id: int | None  # predicted class (None before the model has predicted)
    confidence: float | None


@dataclass
class SlideMap:
    slide: Slide
    model_version: str | None
    cells: list[Cell]
    classes: list[LabelClass] = field(default_factory=list)


def slide_map(slide: Slide) -> SlideMap:
    """Every patch of ``slide`` as a grid cell, with the active model's predicted class."""
    version = active_version(slide.project)
    predicted = slide_predictions(slide.pk, version) if version is not None else {}
    tile = slide.tile_px or 1
    cells = []
    for patch_id, x, y in (slide.patches.exclude(slide_x=None).order_by("id")
                           .values_list("id", "slide_x", "slide_y")):
        label_id, confidence = predicted.get(patch_id, (None, None))
        cells.append(Cell((x or 0) // tile, (y or 0) // tile, patch_id, label_id, confidence))
    classes = list(slide.project.classes.order_by("index"))
    return SlideMap(slide, version.name if version else None, cells, classes)


def heatmap_payload(m: SlideMap) -> dict[str, Any]:
    """The overlay's data in parallel arrays (compact for 100k cells)."""
    cols, rows = m.slide.grid_shape
    return {
        "slide": m.slide.pk, "width": m.slide.width, "height": m.slide.height,
        "tile_px": m.slide.tile_px, "cols": cols, "rows": rows, "mpp": m.slide.mpp,
        "model_version": m.model_version,
        "classes": [{"id": c.pk, "name": c.name, "colour": c.colour, "hotkey": c.hotkey}
                    for c in m.classes],
        "col": [c.col for c in m.cells], "row": [c.row for c in m.cells],
        "patch": [c.patch_id for c in m.cells], "label": [c.label_id for c in m.cells],
        "confidence": [None if c.confidence is None else round(c.confidence, 3)
                       for c in m.cells],
    }


def significant_areas(m: SlideMap, threshold: float,
                      min_cells: int) -> list[dict[str, Any]]:
    """Connected regions of one predicted class at ``threshold`` confidence or more."""
    tile = m.slide.tile_px or 1
    confident = {(c.row, c.col): c for c in m.cells
                 if c.label_id is not None and (c.confidence or 0.0) >= threshold}
    names = {c.pk: c.name for c in m.classes}
    seen: set[tuple[int, int]] = set()
    areas: list[dict[str, Any]] = []
    for start, first in confident.items():
        if start in seen:
            continue
        seen.add(start)
        region = [first]
        queue = deque([start])
        while queue:
            r, c = queue.popleft()
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    key = (r + dr, c + dc)
                    other = confident.get(key)
                    if other is not None and key not in seen and other.label_id == first.label_id:
                        seen.add(key)
                        region.append(other)
                        queue.append(key)
        if len(region) < min_cells:
            continue
        c0, c1 = min(c.col for c in region), max(c.col for c in region)
        r0, r1 = min(c.row for c in region), max(c.row for c in region)
        areas.append({
            "label_id": first.label_id, "label": names.get(first.label_id or -1, "?"),
            "cells": len(region), "area_mm2": round(len(region) * m.slide.tile_mm2, 4),
            "mean_confidence": round(sum(c.confidence or 0.0 for c in region) / len(region), 3),
            "bounds": {"x": c0 * tile, "y": r0 * tile, "width": (c1 - c0 + 1) * tile,
                       "height": (r1 - r0 + 1) * tile},
            "patch_id": max(region, key=lambda c: c.confidence or 0.0).patch_id,
        })
    areas.sort(key=lambda a: (-a["cells"], -a["mean_confidence"]))
    return areas[:MAX_AREAS]


def metric_options(query: Mapping[str, str]) -> tuple[float, int]:
    """``threshold`` (0..1) and ``min_cells`` (>= 1) from a query string; ValueError says
    what is wrong."""
    try:
        threshold = float(query.get("threshold", DEFAULT_THRESHOLD))
        min_cells = int(query.get("min_cells", DEFAULT_MIN_CELLS))
    except (TypeError, ValueError):
        raise ValueError("threshold is a number in 0..1 and min_cells an integer") from None
    if not 0.0 <= threshold <= 1.0 or min_cells < 1:
        raise ValueError("threshold is a number in 0..1 and min_cells an integer >= 1")
    return threshold, min_cells


def tissue_metrics(m: SlideMap, *, threshold: float = DEFAULT_THRESHOLD,
                   min_cells: int = DEFAULT_MIN_CELLS) -> dict[str, Any]:
    """Tissue area, area and share per predicted class (mm2, %) and the significant areas."""
    cell_mm2 = m.slide.tile_mm2
    predicted = [c for c in m.cells if c.label_id is not None]
    per_class = []
    for label in m.classes:
        n = sum(1 for c in predicted if c.label_id == label.pk)
        per_class.append({"label_id": label.pk, "label": label.name, "colour": label.colour,
                          "cells": n, "area_mm2": round(n * cell_mm2, 4),
                          "percent": round(100.0 * n / len(predicted), 1) if predicted else 0.0})
    return {
        "model_version": m.model_version,
        "tissue_mm2": round(m.slide.tissue_mm2 or 0.0, 4),
        "tiles": len(m.cells), "tiled_mm2": round(len(m.cells) * cell_mm2, 4),
        "predicted_tiles": len(predicted), "tile_mm2": round(cell_mm2, 6),
        "classes": per_class,
        "threshold": threshold, "min_cells": min_cells,
        "significant_areas": significant_areas(m, threshold, min_cells),
    }
