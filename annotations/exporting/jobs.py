"""The life cycle of an export: job record, progress on the row, outcome, and the download.

Commands and the Celery task both go through :func:`run_export` under the shared job life
cycle, so every export is recorded the same way (who, when, options, counts, each file's
sha256, or the error). Queuing one from a page is an action (:mod:`annotations.actions`).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

from annotations import lifecycle
from annotations.importing.run import Progress, no_progress
from annotations.models import ExportJob, Project

from .errors import ExportError
from .files import write_zip

if TYPE_CHECKING:
    from django.contrib.auth.models import User
from .result import ExportResult
from .selection import ALL_STATUSES, DEFAULT_STATUSES, ExportFilter, parse_statuses

CONTEXT_CHOICES = ("none", "composite")


def export_options(kind: str, statuses: str | list[str] | None = None, context: str = "none",
                   **extra: Any) -> dict[str, Any]:
    """Checked, JSON-safe options for a job (raises ExportError naming the bad value)."""
    if kind not in ExportJob.Kind.values:
        raise ExportError(f"unknown export kind {kind!r}; known: "
                          f"{', '.join(ExportJob.Kind.values)}")
    default = ALL_STATUSES if kind == ExportJob.Kind.CSV else DEFAULT_STATUSES
    options: dict[str, Any] = {"statuses": list(parse_statuses(statuses, default))}
    if kind == ExportJob.Kind.HF:
        if context not in CONTEXT_CHOICES:
            raise ExportError(f"context must be one of {', '.join(CONTEXT_CHOICES)}, "
                              f"not {context!r}")
        options["context"] = context
    elif context not in ("", "none"):  # the page offered it for every format; it was dropped
        raise ExportError("a context composite is made only for the Hugging Face format (the "
                          "SPIDER layout carries the 24 neighbour tiles themselves, CSV no "
                          f"images); not for {kind}")
    options.update({k: v for k, v in extra.items() if v not in (None, "", False)})
    return options


def record_export_job(project: Project, kind: str, options: dict[str, Any],
                      user: User | None = None) -> ExportJob:
    return ExportJob.objects.create(project=project, kind=kind, options=options,
                                    created_by=user)


def job_progress(job: ExportJob, progress: Progress) -> Progress:
    """Report to ``progress`` and on the job row for the project page (throttled by the life
    cycle; a cancelled job stops the export at its next call)."""

    def report(done: int, total: int | None, unit: str) -> None:
        progress(done, total, unit)
        lifecycle.advance(job, done, total=total)

    return report


def export(job: ExportJob, out: Path, progress: Progress) -> ExportResult:
    from .hf import export_hf
    from .spider import export_spider
    from .table import export_csv

    options = job.options
    export_filter = ExportFilter(tuple(options["statuses"]))
    if job.kind == ExportJob.Kind.HF:
        return export_hf(job.project, out, export_filter=export_filter, progress=progress,
                         context=options.get("context") == "composite")
    if job.kind == ExportJob.Kind.SPIDER:
        return export_spider(job.project, out, export_filter=export_filter, progress=progress)
    return export_csv(job.project, out, export_filter=export_filter, progress=progress)


def run_export(job: ExportJob, out: Path, *, progress: Progress = no_progress,
               token: str | None = None,
               after: Callable[[ExportResult], None] | None = None) -> ExportResult:
    """Run a claimed ``job`` into ``out``, push it when the options ask (with ``token``),
    call ``after`` (e.g. store the download), then record the outcome. Errors are recorded
    and re-raised."""
    lifecycle.start_stage(job, "writing", unit="patches")
    try:
        result = export(job, Path(out), job_progress(job, progress))
        if job.options.get("push_to_hub"):
            from .hub import push_to_hub

            if not token:
                raise ExportError("pushing to the Hub needs a token and none was given")
            job.options["commit_url"] = push_to_hub(
                Path(out), job.options["push_to_hub"], token=token,
                private=bool(job.options.get("private")))
        if after is not None:
            after(result)
    except lifecycle.JobCancelled:
        raise
    except Exception as exc:
        lifecycle.fail(job, str(exc) or type(exc).__name__)
        raise
    lifecycle.succeed(job, counts=result.counts, files=result.files,
                      done=result.counts["rows"], total=result.counts["rows"],
                      options=job.options, result_file=job.result_file)
    return result


def download_name(job: ExportJob) -> str:
    suffix = "csv" if job.kind == ExportJob.Kind.CSV else "zip"
    return f"{job.project.slug}-{job.kind}-export-{job.pk}.{suffix}"


def scratch_folder(job: ExportJob) -> Path:
    """Where a worker writes ``job`` before storing it: one fixed folder per job, so a
    resumed or redelivered job clears what a killed worker left there."""
    return Path(settings.SPIDER_SCRATCH_ROOT) / f"export-{job.pk}"


def execute_export_job(job: ExportJob) -> None:
    """Run a claimed job in its scratch folder and store the download (a zip of the folder,
    or the CSV) in Django's storage; the outcome is recorded on the job. The scratch folder
    is removed once the download is stored, before the job is marked succeeded (a worker
    dying in between leaves a stalled job, whose resume clears it), and on any failure."""
    tmp = scratch_folder(job)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        name = download_name(job)
        out = tmp / (name if job.kind == ExportJob.Kind.CSV else "export")

        def store(result: ExportResult) -> None:
            source = out
            if job.kind != ExportJob.Kind.CSV:
                source = tmp / name
                write_zip(out, source, prefix=Path(name).stem)
            with open(source, "rb") as handle:
                job.result_file = default_storage.save(f"exports/{job.project.slug}/{name}",
                                                       File(handle, name=name))
            shutil.rmtree(tmp, ignore_errors=True)  # before success is recorded

        with contextlib.suppress(ExportError):  # recorded on the job
            run_export(job, out, after=store)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
