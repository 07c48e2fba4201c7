"""Exports of a project's reviewed dataset: Hugging Face `datasets`, SPIDER layout, CSV.

Entry points: :func:`export_hf`, :func:`export_spider`, :func:`export_csv` write files;
:func:`run_export` runs a claimed :class:`~annotations.models.ExportJob` (commands and the
Celery task use it); ``annotations.actions.start_export`` queues one from the project page.
"""

from importlib import import_module
from typing import Any

# Imported on first use: the Hugging Face writer loads pyarrow and datasets, which the web
# tier (that only queues exports) must not pay for.
_LOCATIONS = {
    "ExportError": ".errors",
    "ExportFilter": ".selection",
    "ExportResult": ".result",
    "execute_export_job": ".jobs",
    "export_csv": ".table",
    "export_hf": ".hf",
    "export_options": ".jobs",
    "export_spider": ".spider",
    "record_export_job": ".jobs",
    "run_export": ".jobs",
}


def __getattr__(name: str) -> Any:
    if name not in _LOCATIONS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(_LOCATIONS[name], __name__), name)


__all__ = [
    "ExportError",
    "ExportFilter",
    "ExportResult",
    "execute_export_job",
    "export_csv",
    "export_hf",
    "export_options",
    "export_spider",
    "record_export_job",
    "run_export",
]
