"""Importers: files on disk (or a tar stream) -> tiles, slides, classes and patches.

Public entry points: :func:`import_spider`, :func:`import_folder` and :func:`import_slide`.
"""

from .errors import ImportAborted, SourceError
from .folder import import_folder
from .report import ImportReport, SkippedRecord
from .slides import import_slide
from .spider import import_spider

__all__ = [
    "ImportAborted",
    "ImportReport",
    "SkippedRecord",
    "SourceError",
    "import_folder",
    "import_slide",
    "import_spider",
]
