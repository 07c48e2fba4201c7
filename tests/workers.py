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


def start_worker(settings, queues: str, *, log: Path | None = None, pool: str = "solo",
                 **env_overrides: str) -> subprocess.Popen:
    """A real Celery worker process on the test database and media folder (own session, so
    a test can kill it and its children at once). With ``log``, it logs at INFO to that
    file (a pipe would fill up and stall it). ``pool="prefork"`` runs tasks in one daemonic
    child, as the default queue's workers do in docker-compose.yml."""
    from spider_web.celery import app

    app.control.purge()
    env = dict(os.environ)
    db = connection.settings_dict
    env.update(DATABASE_URL=f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
               MEDIA_ROOT=str(settings.MEDIA_ROOT), **env_overrides)
    with log.open("wb") if log else nullcontext(subprocess.PIPE) as stderr:
        return subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "spider_web", "worker", "-Q", queues,
             "--pool", pool, *(["--concurrency", "1"] if pool == "prefork" else []),
             "--loglevel", "INFO" if log else "WARNING", "--hostname",
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


def wait_until(predicate, timeout: float, what: str) -> None:
    """Poll ``predicate`` every 0.2 s; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def register_random_head(project, tmp_path: Path, backbone: str, name: str):
    """Register ``backbone`` with a seeded random context head: a model whose predictions
    need every tile embedded first, which is what the worker tests exercise."""
    import io

    import torch
    from django.core.management import call_command
    from safetensors.torch import save_file

    from annotations.models import LabelClass
    from inference.modeling import SpiderContextHead, create_backbone

    classes = LabelClass.objects.filter(project=project).count()
    torch.manual_seed(0)
    head = SpiderContextHead(create_backbone(backbone).config.embed_dim, classes)
    path = tmp_path / "head.safetensors"
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(path))
    call_command("register_model", project=project.slug, name=name, backbone=backbone,
                 head=str(path), stdout=io.StringIO())
    return project

