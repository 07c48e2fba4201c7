"""``--wait`` for inference commands: follow a queued job's progress until it ends."""

from __future__ import annotations

import sys
import time

from django.core.management.base import CommandError
from tqdm import tqdm

from inference.models import InferenceJob

POLL_SECONDS = 0.5
# Say so when no worker has touched the job for this long: the usual cause is none running.
NO_WORKER_HINT_SECONDS = 30


def wait_for_job(job: InferenceJob, *, show: bool | None = None) -> InferenceJob:
    """Poll ``job`` with a progress bar per stage; raise CommandError if it fails."""
    show = sys.stderr.isatty() if show is None else show
    bar: tqdm | None = None
    stage = None
    hinted = False
    started = time.monotonic()
    while True:
        job.refresh_from_db()
        done, total, unit = job.stage_counts()
        if job.stage != stage:
            if bar is not None:
                bar.close()
            stage = job.stage
            bar = tqdm(desc=job.stage_display or job.get_status_display(),
                       total=total or None, unit=f" {unit}", disable=not show,
                       file=sys.stderr, dynamic_ncols=True)
        if bar is not None:
            bar.total = total or None
            bar.n = done
            bar.refresh()
        if not job.is_live:
            break
        if (not hinted and job.heartbeat_at is None
                and time.monotonic() - started > NO_WORKER_HINT_SECONDS):
            sys.stderr.write("still waiting for a worker: is a Celery worker consuming the "
                             "'gpu' and 'default' queues?\n")
            hinted = True
        time.sleep(POLL_SECONDS)
    if bar is not None:
        bar.close()
    if job.status == InferenceJob.Status.FAILED:
        first = job.error.splitlines()[0] if job.error else "no error recorded"
        raise CommandError(f"{job.kind} job {job.pk} failed: {first}")
    if job.status == InferenceJob.Status.CANCELLED:
        raise CommandError(f"{job.kind} job {job.pk} was cancelled")
    return job
