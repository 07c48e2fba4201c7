"""Exports of a project's reviewed dataset: Hugging Face `datasets`, SPIDER layout, CSV.

Entry points: :func:`export_hf`, :func:`export_spider`, :func:`export_csv` write files;
:func:`run_export` runs a recorded :class:`~annotations.models.ExportJob` (commands and the
Celery task use it); :func:`start_export` queues one from the project page.
"""

from .errors import ExportError
from .hf import export_hf
from .jobs import execute_export_job, export_options, record_export_job, run_export, start_export
from .result import ExportResult
from .selection import ExportFilter
from .spider import export_spider
from .table import export_csv

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
    "start_export",
]
