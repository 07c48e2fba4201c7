"""Importers: files on disk (or a tar stream) -> tiles, slides, classes and patches.

Public entry points: :func:`import_spider`, :func:`import_folder` and :func:`import_slide`.

They are loaded on first use (PEP 562), so that importing a Django-free submodule, as the
file-check processes do (:mod:`.filecheck`), does not set up the models.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .errors import ImportAborted, SourceError
    from .folder import import_folder
    from .report import ImportReport, SkippedRecord
    from .slides import import_slide
    from .spider import import_spider

_HOMES = {
    "ImportAborted": "errors",
    "ImportReport": "report",
    "SkippedRecord": "report",
    "SourceError": "errors",
    "import_folder": "folder",
    "import_slide": "slides",
    "import_spider": "spider",
}

__all__ = [
    "ImportAborted",
    "ImportReport",
    "SkippedRecord",
    "SourceError",
    "import_folder",
    "import_slide",
    "import_spider",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
