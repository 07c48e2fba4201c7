"""Celery application, wired as in Celery's official Django example."""

import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")

app = Celery("spider_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _sweep_stalled_jobs(**kwargs: object) -> None:
    """Each worker also sweeps for stalled jobs (spider_web/sweeper.py)."""
    from spider_web.sweeper import start

    start()
