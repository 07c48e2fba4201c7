"""Where an import started from the browser or the API may read.

Project admins are not server administrators: every path such an import opens (the dataset
folder, ``metadata.json``, ``images/``, each image, each archive part, a slide file) must,
with its symbolic links resolved, lie inside one of ``SPIDER_IMPORT_ROOTS``. Imports run from
the command line are the operator's own and are not confined.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from django.conf import settings

from .errors import SourceError

BROWSER_IMPORTS_OFF = ("Imports from the browser are off: the server sets no "
                       "SPIDER_IMPORT_ROOTS. Use manage.py {command} instead.")


def configured_roots() -> list[Path]:
    """SPIDER_IMPORT_ROOTS, resolved (an empty list: browser imports are off)."""
    return [Path(root).resolve() for root in settings.SPIDER_IMPORT_ROOTS]


class Confinement:
    """Resolves paths and refuses any that lands outside the allowed roots."""

    def __init__(self, roots: Sequence[Path]) -> None:
        self.roots = [Path(root).resolve() for root in roots]

    def allows(self, path: Path) -> bool:
        resolved = path.resolve()
        return any(resolved.is_relative_to(root) for root in self.roots)

    def check(self, path: Path, shown: str) -> Path:
        """``path`` resolved, or a :class:`SourceError` naming it as ``shown`` (never its
        content, nor where a link points)."""
        if not self.roots:
            raise SourceError(BROWSER_IMPORTS_OFF.format(command="import_spider"))
        if not self.allows(path):
            raise SourceError(f"{shown}: points outside the import folders (a symbolic link?); "
                              "refused")
        return path.resolve()


def confinement(roots: Sequence[Path] | None) -> Confinement | None:
    return None if roots is None else Confinement(roots)
