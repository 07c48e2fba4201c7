"""Real Celery worker processes for tests that need the broker and a worker's behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import nullcontext
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent


def start_worker(settings, queues: str, *, log: Path | None = None,
                 **env_overrides: str) -> subprocess.Popen:
    """A real Celery worker process on the test database and media folder (own session, so
    a test can kill it and its children at once). With ``log``, it logs at INFO to that
    file (a pipe would fill up and stall it)."""
    from spider_web.celery import app

    app.control.purge()
    env = dict(os.environ)
    db = connection.settings_dict
    env.update(DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
               MEDIA_ROOT=str(settings.MEDIA_ROOT), **env_overrides)
    with log.open("wb") if log else nullcontext(subprocess.PIPE) as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "spider_web", "worker", "-Q", queues,
             "--pool", "solo", "--loglevel", "INFO" if log else "WARNING", "--hostname",
             f"test-{os.getpid()}-{time.monotonic_ns()}@%h"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr,
            start_new_session=True)


def stop_worker(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
