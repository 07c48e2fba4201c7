"""Celery application, wired as in Celery's official Django example."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "spider_web.settings")

app = Celery("spider_web")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
