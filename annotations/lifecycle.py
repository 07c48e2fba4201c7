"""The one life cycle of every job: claim, start a stage, advance, beat, succeed, fail,
cancel, resume. Works on any :class:`~annotations.models.TrackedJob` subclass.

Every transition is one conditional UPDATE, so two workers (or a worker and a user pressing
"cancel") never both win: a worker that finds its job cancelled gets :class:`JobCancelled`
from its next :func:`advance` or heartbeat and stops. The state machine is drawn in
``TrackedJob``'s docstring.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar, cast

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.utils import timezone

from annotations.models import Project, TrackedJob
from annotations.models.jobs import JobQuerySet, stale_before

log = logging.getLogger(__name__)

# A job of one concrete model: the helpers below hand back the caller's own type.
J = TypeVar("J", bound=TrackedJob)

Status = TrackedJob.Status
ERROR_LIMIT = 4000


class JobCancelled(Exception):
    """The job was cancelled (or taken over) while this worker ran it: stop quietly."""


@dataclass(frozen=True)
class JobType:
    """A kind of job: its model and how to hand a job id to a worker."""

    name: str
    model: type[TrackedJob]
    enqueue: Callable[[int], object]
    # What a job leaves behind when it is given up (e.g. an export's scratch folder).
    cleanup: Callable[[Any], None] | None = None


JOB_TYPES: dict[str, JobType] = {}


def register_job_type(name: str, model: type[TrackedJob],
                      enqueue: Callable[[int], object],
                      cleanup: Callable[[Any], None] | None = None) -> None:
    """Called by each app's ``AppConfig.ready`` for the job models it owns."""
    JOB_TYPES[name] = JobType(name, model, enqueue, cleanup)


def jobs_of(model: type[J]) -> JobQuerySet[J]:
    """``model.objects.all()``, typed by the concrete model: the django-stubs plugin types
    ``objects`` of a ``type[J]`` by J's bound, the abstract TrackedJob (which has no
    ``project``, a field every job model registered with the life cycle has)."""
    return cast("JobQuerySet[J]", model.objects.all())


def of_project(model: type[J], project: Project) -> JobQuerySet[J]:
    """The jobs of ``model`` in ``project`` (a field of every registered job model, which the
    type checker cannot see: see :func:`jobs_of`)."""
    return jobs_of(model).filter(project=project)


def live_twin(model: type[J], project: Project, **same: Any) -> J | None:
    """A pending or running job of ``model`` in ``project`` matching ``same`` (e.g. its
    kind), found under a lock of the project row: the one that a new job of that kind must
    wait for. Call it in the transaction that records the new job, so two requests at once
    cannot both pass (one job of a kind per project: a fuzzer once queued a thousand)."""
    list(Project.objects.select_for_update().filter(pk=project.pk).values_list("pk", flat=True))
    return of_project(model, project).filter(status__in=TrackedJob.LIVE, **same).first()


def _rows(job: J) -> JobQuerySet[J]:
    return jobs_of(type(job)).filter(pk=job.pk)


def claim(job: TrackedJob, *, exclusive: bool = True) -> bool:
    """Take ``job`` up in a worker: pending -> running. With ``exclusive`` a running job is
    taken over only when stalled (its worker died), so a duplicate delivery of the message
    does nothing; without it (steps that may run side by side) any running job is joined.
    ``attempts`` counts take-ups (from pending, or of a stalled job), never the steps that
    join a live one: the sweep gives a job up after SPIDER_JOB_MAX_ATTEMPTS of those.
    Returns False when the job is not this worker's to run."""
    now = timezone.now()
    takeable = Q(status=Status.PENDING) | Q(status=Status.RUNNING,
                                            heartbeat_at__lt=stale_before(now))
    claimed = _rows(job).filter(takeable).update(
        status=Status.RUNNING, heartbeat_at=now, attempts=F("attempts") + 1,
        started_at=now if job.started_at is None else job.started_at)
    if not claimed and not exclusive:
        claimed = _rows(job).filter(status=Status.RUNNING).update(heartbeat_at=now)
    job.refresh_from_db()
    return bool(claimed)


def start_stage(job: TrackedJob, stage: str = "", *, total: int | None = None,
                unit: str = "", done: int = 0, **fields: Any) -> None:
    """Enter ``stage`` with ``done`` of ``total`` already there (a resumed job counts what
    it finds, not zero). Extra ``fields`` are saved with it."""
    now = timezone.now()
    values = dict(stage=stage, total=total, unit=unit, done=done, stage_started_at=now,
                  stage_done_at_start=done, heartbeat_at=now, **fields)
    _write(job, values)


def advance(job: TrackedJob, done: int | None = None, *, by: int = 0,
            total: int | None = None, force: bool = False) -> None:
    """Record progress: ``done`` so far, or ``by`` more (always written: several workers
    may add to one job). Absolute progress is written at most once per
    ``SPIDER_JOB_PROGRESS_SECONDS`` unless ``force`` or the stage is complete."""
    now_s = time.monotonic()
    values: dict[str, Any] = {"heartbeat_at": timezone.now()}
    if by:
        values["done"] = F("done") + by
        job.done += by
    else:
        last = job._last_advance
        finished = done is not None and done == (total if total is not None else job.total)
        if not (force or finished or last is None
                or now_s - last >= settings.SPIDER_JOB_PROGRESS_SECONDS):
            return
        if done is not None:
            values["done"] = job.done = done
        if total is not None:
            values["total"] = job.total = total
    job._last_advance = now_s
    _write(job, values, refresh=False)




def _write(job: TrackedJob, values: dict[str, Any], *, refresh: bool = True) -> None:
    """Update a running job; raise JobCancelled if it is no longer running."""
    if not _rows(job).filter(status=Status.RUNNING).update(**values):
        raise JobCancelled(f"{job.job_type} job {job.pk} is no longer running")
    if refresh:
        job.refresh_from_db()


def succeed(job: TrackedJob, **fields: Any) -> bool:
    """running -> succeeded, saving ``fields`` (e.g. the report) with it."""
    values = dict(status=Status.SUCCEEDED, finished_at=timezone.now(), error="", **fields)
    if job.total is not None and "done" not in fields:
        values["done"] = F("total")
    changed = _rows(job).filter(status=Status.RUNNING).update(**values)
    job.refresh_from_db()
    return bool(changed)


def fail(job: TrackedJob, error: str, **fields: Any) -> bool:
    """pending | running -> failed with ``error`` (the first line is what pages show)."""
    log.warning("%s job %s failed: %s", job.job_type, job.pk, error.splitlines()[0]
                if error else "")
    changed = _rows(job).filter(status__in=TrackedJob.LIVE).update(
        status=Status.FAILED, finished_at=timezone.now(), error=error[:ERROR_LIMIT], **fields)
    job.refresh_from_db()
    return bool(changed)


def cancel(job: TrackedJob) -> bool:
    """pending | running -> cancelled; a worker still on it stops at its next write."""
    changed = _rows(job).filter(status__in=TrackedJob.LIVE).update(
        status=Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return bool(changed)


def reset_for_resume(job: TrackedJob) -> bool:
    """stalled | failed -> pending, so the next delivery claims it; the caller enqueues."""
    now = timezone.now()
    changed = _rows(job).filter(
        Q(status=Status.FAILED) | Q(status=Status.RUNNING, heartbeat_at__lt=stale_before(now))
    ).update(status=Status.PENDING, heartbeat_at=now, finished_at=None, error="")
    job.refresh_from_db()
    return bool(changed)


@dataclass
class Swept:
    """What one :func:`sweep` did, as "<type> job <id>" labels."""

    resumed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def sweep(now: datetime | None = None) -> Swept:
    """Stalled jobs resume or fail by themselves (run by every worker every
    SPIDER_JOB_SWEEP_SECONDS, and by ``manage.py sweep_jobs``).

    A job taken up fewer than SPIDER_JOB_MAX_ATTEMPTS times is put back to pending and
    queued again: its executor carries on from what is stored. One that has used up its
    attempts fails with a message saying so (its leftovers cleaned up); a project admin may
    still resume it by hand. Each change is one conditional UPDATE on a still-stalled row,
    so workers sweeping at the same moment never both act on one job.
    """
    now = now or timezone.now()
    swept = Swept()
    for kind in JOB_TYPES.values():
        for job in jobs_of(kind.model).stalled(now):
            still_stalled = _rows(job).filter(status=Status.RUNNING,
                                              heartbeat_at__lt=stale_before(now))
            label = f"{job.job_type} job {job.pk}"
            if job.attempts >= settings.SPIDER_JOB_MAX_ATTEMPTS:
                error = (f"stalled {job.attempts} time(s): its worker stopped beating (killed,"
                         f" lost or out of memory) each time, so it was given up; resume it "
                         f"once the cause is fixed")
                if still_stalled.update(status=Status.FAILED, finished_at=now, error=error):
                    log.warning("%s gave up: %s", label, error)
                    swept.failed.append(label)
                    if kind.cleanup is not None:
                        kind.cleanup(job)
            elif still_stalled.update(status=Status.PENDING, heartbeat_at=now,
                                      finished_at=None, error=""):
                log.warning("%s stalled (attempt %s): queued again", label, job.attempts)
                kind.enqueue(job.pk)
                swept.resumed.append(label)
    return swept


@contextmanager
def beating(job: TrackedJob) -> Iterator[None]:
    """Beat ``job``'s heartbeat from a background thread while the block runs, so a job busy
    in one long call (a training run, a parquet write) is not taken for dead. The thread
    stops when the job is no longer running; the caller's next write then raises."""
    interval = settings.SPIDER_JOB_HEARTBEAT_SECONDS
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(interval):
                if not _rows(job).filter(status=Status.RUNNING).update(
                        heartbeat_at=timezone.now()):
                    return
        except Exception:  # the worker's own writes will report a broken database
            log.exception("heartbeat of %s job %s stopped", job.job_type, job.pk)
        finally:
            connection.close()

    thread = threading.Thread(target=beat, name=f"heartbeat-{job.job_type}-{job.pk}",
                              daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)


@contextmanager
def running(job: TrackedJob, *, exclusive: bool = True) -> Iterator[bool]:
    """What a task does around its executor: claim the job, beat while it runs, record an
    unexpected error as the job's failure. Yields whether the job was claimed."""
    if not claim(job, exclusive=exclusive):
        yield False
        return
    try:
        with beating(job):
            yield True
    except JobCancelled:
        log.info("%s job %s stopped: cancelled", job.job_type, job.pk)
    except Exception as exc:
        fail(job, f"{type(exc).__name__}: {exc}")
        raise


def run(job: J, work: Callable[[J], object], *, exclusive: bool = True) -> bool:
    """Claim ``job`` and run ``work(job)`` under :func:`running`; False if not claimed.
    What every task and command that runs a job calls."""
    with running(job, exclusive=exclusive) as claimed:
        if claimed:
            work(job)
    return claimed


def load(model: type[J], job_id: int, *related: str) -> J | None:
    """Re-fetch a job for a task (None when it was deleted meanwhile)."""
    return jobs_of(model).select_related("project", *related).filter(pk=job_id).first()
