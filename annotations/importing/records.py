"""Parsing one SPIDER metadata record into what the importer needs, or a reason it is bad."""

from collections.abc import Sequence
from dataclasses import dataclass

from annotations.models.patches import CENTRE_INDEX, GRID_SIZE

from .validation import unsafe_name_reason

CONTEXT_KEYS = [f"{row}_{col}" for row in range(GRID_SIZE) for col in range(GRID_SIZE)]
KNOWN_KEYS = frozenset(CONTEXT_KEYS)
VALID_SPLITS = {"train", "test"}


@dataclass(frozen=True, slots=True)
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
    if not context.keys() <= KNOWN_KEYS:
        unknown = sorted(set(context) - KNOWN_KEYS)
        raise BadRecord(file, f"context_info has unknown keys {unknown} (expected row_col, 0..4)")
    names: list[str | None] = [context.get(key) for key in CONTEXT_KEYS]
    names[CENTRE_INDEX] = image_name
    if not all_names_safe([name for name in names if name is not None]):
        for key, name in zip(CONTEXT_KEYS, names, strict=True):
            if name is not None and (reason := unsafe_name_reason(name)):
                raise BadRecord(str(name), f"context_info[{key!r}]: {reason}")
    return SpiderRecord(index, slide, split, label, image_name, tuple(names))


def all_names_safe(names: Sequence[object]) -> bool:
    """True when every name surely passes :func:`unsafe_name_reason`, tested on all of them
    joined (NUL, which no name may hold, as the separator) in a few C-speed scans instead
    of one Python call per name. False only means "look one by one": a legal name holding
    ``..`` (``a..b.png``) lands there too.
    """
    try:
        joined = "\x00".join(names)  # type: ignore[arg-type]  # a non-string: TypeError
    except TypeError:
        return False
    return (bool(joined) and joined.count("\x00") == len(names) - 1
            and "\x00\x00" not in joined and not joined.startswith(("/", "\x00"))
            and not joined.endswith("\x00") and "\x00/" not in joined
            and "\\" not in joined and ".." not in joined)
