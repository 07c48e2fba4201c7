"""The stalled-job sweep inside every Celery worker: where a worker runs, jobs whose worker
died resume or fail by themselves, with no extra service (Celery beat) to deploy."""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections, connection

log = logging.getLogger(__name__)
_started = threading.Event()


def _loop(interval: float) -> None:
    from annotations import lifecycle

    pause = threading.Event()
    while not pause.wait(interval):  # the first pass one interval after start-up
        try:
            close_old_connections()
            lifecycle.sweep()
        except Exception:  # a database blip: try again next round
            log.exception("stalled-job sweep failed")
            connection.close()


def start() -> None:
    """Start the sweep thread once per process (SPIDER_JOB_SWEEP_SECONDS = 0: never)."""
    interval = settings.SPIDER_JOB_SWEEP_SECONDS
    if interval <= 0 or _started.is_set():
        return
    _started.set()
    threading.Thread(target=_loop, args=(interval,), name="stalled-job-sweep",
                     daemon=True).start()
