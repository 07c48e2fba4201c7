"""The life cycle every importer shares: job state, batching, strict rollback, progress."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext

from django.db import connection, transaction

from annotations import lifecycle
from annotations.models import ImportJob
from annotations.tilestore import delete_stored

from .errors import ImportAborted
from .report import ImportReport
from .writer import ProjectWriter

log = logging.getLogger(__name__)

# progress(done, total, unit) is called from the importing thread as work advances.
Progress = Callable[[int, int | None, str], None]


def no_progress(done: int, total: int | None, unit: str) -> None:
    return None


@contextmanager
def import_run(writer: ProjectWriter, *,
               strict: bool) -> Iterator[Callable[[], AbstractContextManager[object]]]:
    """Wrap an import: ``--strict`` runs it as one transaction that rolls back (and removes the
    files it stored) when any record was bad; otherwise each batch commits on its own, so a
    crash leaves whole batches only and a re-run picks up where it stopped.

    Yields the context manager factory each batch should run in.
    """
    outer = batch_transaction() if strict else nullcontext()
    try:
        with outer:
            yield (lambda: nullcontext()) if strict else batch_transaction
            writer.finish()
            if strict and writer.report.skipped:
                raise ImportAborted(writer.report)
    except BaseException:
        writer.close()  # files of a batch read ahead may still be landing in writer.written
        if strict:
            delete_stored(writer.written)
        raise
    finally:
        writer.close()


@contextmanager
def batch_transaction() -> Iterator[None]:
    """One batch's transaction. On PostgreSQL its commit does not wait for the WAL flush
    (``synchronous_commit`` off, for this transaction only): still atomic, and a server
    crash can lose only the last few batches of a running import, which a re-run adds
    again. The job's own commits stay synchronous, and flushing one flushes every batch
    before it, so a job marked done never lacks a batch."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        yield


def start_job(job: ImportJob | None, total: int | None, unit: str) -> None:
    if job is not None:
        lifecycle.start_stage(job, "reading", total=total, unit=unit)


def finish_job(job: ImportJob | None, report: ImportReport, error: str = "") -> None:
    """Record the outcome with the report (what is in the project, counted, not assumed)."""
    if job is None:
        return
    if error:
        lifecycle.fail(job, error, summary=report.as_dict())
    else:
        lifecycle.succeed(job, summary=report.as_dict())


def job_progress(job: ImportJob | None, progress: Progress) -> Progress:
    """A progress callback that also records progress on the job row (throttled by the
    life cycle; a cancelled job stops the import at its next call)."""

    def report(done: int, total: int | None, unit: str) -> None:
        progress(done, total, unit)
        if job is not None:
            lifecycle.advance(job, done, total=total)

    return report
