"""Parsing one SPIDER metadata record into what the importer needs, or a reason it is bad."""

from dataclasses import dataclass

from annotations.models.patches import CENTRE_INDEX, GRID_SIZE

from .validation import unsafe_name_reason

CONTEXT_KEYS = [f"{row}_{col}" for row in range(GRID_SIZE) for col in range(GRID_SIZE)]
VALID_SPLITS = {"train", "test"}


@dataclass(frozen=True)
class SpiderRecord:
    index: int
    slide: str
    split: str
    label: str
    image_name: str
    grid_names: tuple[str | None, ...]  # 25 names, row-major; None where context is missing

    @property
    def missing(self) -> list[str]:
        return [key for key, name in zip(CONTEXT_KEYS, self.grid_names, strict=True)
                if name is None]


class BadRecord(Exception):
    def __init__(self, file: str, reason: str) -> None:
        super().__init__(reason)
        self.file = file
        self.reason = reason


def parse_spider_record(index: int, raw: object) -> SpiderRecord:
    """Validate one metadata.json entry; raises :class:`BadRecord` naming the field."""
    if not isinstance(raw, dict):
        raise BadRecord("metadata.json", f"record is a {type(raw).__name__}, not an object")
    image_name = raw.get("image_name")
    file = image_name if isinstance(image_name, str) and image_name else "metadata.json"
    reason = unsafe_name_reason(image_name)
    if reason:
        raise BadRecord(file, f"image_name: {reason}")
    assert isinstance(image_name, str)  # what unsafe_name_reason checked first
    slide = raw.get("slide_id")
    if isinstance(slide, int) and not isinstance(slide, bool):
        slide = str(slide)
    if not isinstance(slide, str) or not slide:
        raise BadRecord(file, "slide_id is missing or not a string")
    label = raw.get("class")
    if not isinstance(label, str) or not label:
        raise BadRecord(file, "class is missing or not a string")
    split = raw.get("split")
    if split not in VALID_SPLITS:
        raise BadRecord(file, f"split is {split!r}, expected 'train' or 'test'")
    context = raw.get("context_info", {})
    if context is None:
        context = {}
    if not isinstance(context, dict):
        raise BadRecord(file, "context_info is not an object")
    unknown = sorted(set(context) - set(CONTEXT_KEYS))
    if unknown:
        raise BadRecord(file, f"context_info has unknown keys {unknown} (expected row_col, 0..4)")
    names: list[str | None] = []
    for position, key in enumerate(CONTEXT_KEYS):
        if position == CENTRE_INDEX:
            names.append(image_name)
            continue
        name = context.get(key)
        if name is None:
            names.append(None)
            continue
        reason = unsafe_name_reason(name)
        if reason:
            raise BadRecord(str(name), f"context_info[{key!r}]: {reason}")
        names.append(name)
    return SpiderRecord(index, slide, split, label, image_name, tuple(names))
