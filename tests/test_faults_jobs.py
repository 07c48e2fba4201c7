"""Jobs whose worker died resume or fail by themselves, and a job no worker takes says so
(issue 13, items 5 and 6). Real Celery workers over real Redis, killed with SIGKILL."""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from annotations.models import ExportJob, ImportJob, Patch
from tests.test_job_lifecycle import STALE_SECONDS, WORKER_ENV, api_job, kill, wait_until
from tests.workers import start_worker, stop_worker

# Every worker sweeps each second; two attempts before a stalled job is given up.
SWEEPING = {**WORKER_ENV, "SPIDER_JOB_SWEEP_SECONDS": "1", "SPIDER_JOB_MAX_ATTEMPTS": "2"}


@pytest.fixture
def fast_stall(settings):
    settings.SPIDER_JOB_STALE_SECONDS = STALE_SECONDS


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_killed_import_resumes_by_itself_and_its_patches_say_so_meanwhile(
        client, users, project, spider_copy, tmp_path, settings, fast_stall):
    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    records = json.loads((spider_copy / "metadata.json").read_text(encoding="utf-8"))
    env = {**SWEEPING, "SPIDER_IMPORT_ROOTS": str(tmp_path), "SPIDER_IMPORT_BATCH": "1"}
    first = start_worker(settings, "default", **env)
    second = None
    try:
        client.force_login(users["admin"])
        client.post(reverse("start-import", args=[project.slug]),
                    {"kind": "spider", "path": str(spider_copy)})
        job = ImportJob.objects.get(project=project)
        url = f"/api/projects/{project.slug}/import-jobs/{job.pk}/"
        wait_until(lambda: 0 < Patch.objects.filter(project=project).count()
                   < len(records) // 2, 90, "the worker to import some records")
        kill(first)
        landed = Patch.objects.filter(project=project).count()
        early = Patch.objects.filter(project=project).order_by("id").first()
        patch_api = f"/api/projects/{project.slug}/patches/{early.pk}/"
        assert client.get(patch_api).json()["import_unfinished"] is True
        page = client.get(reverse("patch-detail", args=[project.slug, early.pk]))
        assert "From an import that has not finished" in page.content.decode()

        second = start_worker(settings, "default", **env)  # nobody presses Resume
        done = wait_until(lambda: (j := api_job(client, url))["state"] in
                          ("succeeded", "failed") and j, 120, "the import to resume itself",
                          show=lambda: api_job(client, url))
        assert done["state"] == "succeeded", done["error"]
        assert done["attempts"] == 2
        names = list(Patch.objects.filter(project=project).values_list("image_name",
                                                                           flat=True))
        assert sorted(names) == sorted(r["image_name"] for r in records)  # all, once each
        assert done["summary"]["patches_existing"] == landed  # counted, not "duplicate"
        assert done["summary"]["skipped"] == []
        assert client.get(patch_api).json()["import_unfinished"] is False
        page = client.get(reverse("patch-detail", args=[project.slug, early.pk]))
        assert "From an import that has not finished" not in page.content.decode()
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_export_stalled_too_often_fails_and_leaves_no_scratch(
        client, users, imported, settings, tmp_path, fast_stall):
    settings.SPIDER_SCRATCH_ROOT = str(tmp_path / "scratch")
    env = {**SWEEPING, "SPIDER_SCRATCH_ROOT": settings.SPIDER_SCRATCH_ROOT}
    first = start_worker(settings, "default", **env)
    second = None
    try:
        client.force_login(users["reviewer"])
        client.post(reverse("start-export", args=[imported.slug]),
                    {"kind": "hf", "context": "composite"})
        job = ExportJob.objects.get(project=imported)
        url = f"/api/projects/{imported.slug}/export-jobs/{job.pk}/"
        scratch = tmp_path / "scratch" / f"export-{job.pk}"
        wait_until(lambda: (j := api_job(client, url))["done"] > 0 and j["state"] == "running",
                   90, "the export to write some rows")
        kill(first)
        assert scratch.is_dir() and any(scratch.rglob("*"))
        # This worker allows one attempt only: the stalled export is given up, not retried.
        second = start_worker(settings, "default", **{**env, "SPIDER_JOB_MAX_ATTEMPTS": "1"})
        done = wait_until(lambda: (j := api_job(client, url))["state"] == "failed" and j,
                          STALE_SECONDS + 60, "the sweep to give the export up")
        assert "stalled 1 time(s)" in done["error"] and done["attempts"] == 1
        wait_until(lambda: not scratch.exists(), 10, "the scratch folder to be removed")
        page = client.get(reverse("project-detail", args=[imported.slug])).content.decode()
        assert "stalled 1 time(s)" in page
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)


@pytest.mark.django_db
def test_a_job_no_worker_takes_says_so_on_the_page_and_in_the_api(
        client, users, project, settings):
    settings.SPIDER_JOB_PENDING_WARN_SECONDS = 60
    job = ImportJob.objects.create(project=project, kind="spider", source="/x")
    client.force_login(users["viewer"])
    url = f"/api/projects/{project.slug}/import-jobs/{job.pk}/"
    assert client.get(url).json()["waiting_for_worker"] is False  # just queued
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(
        seconds=90))
    assert client.get(url).json()["waiting_for_worker"] is True
    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    assert "no worker has taken this job since" in page


@pytest.mark.django_db
def test_sweep_jobs_command_requeues_once_then_fails(project, settings, monkeypatch):
    from annotations import lifecycle

    settings.SPIDER_JOB_STALE_SECONDS = 60
    settings.SPIDER_JOB_MAX_ATTEMPTS = 2
    queued: list[int] = []
    kind = lifecycle.JOB_TYPES["import"]
    monkeypatch.setitem(lifecycle.JOB_TYPES, "import", lifecycle.JobType(
        kind.name, kind.model, queued.append, kind.cleanup))  # no broker message here
    old = timezone.now() - timedelta(minutes=5)
    job = ImportJob.objects.create(project=project, kind="spider", source="/x",
                                   status="running", heartbeat_at=old, attempts=1)
    out = io.StringIO()
    call_command("sweep_jobs", stdout=out)
    job.refresh_from_db()
    assert f"import job {job.pk}: stalled, queued again" in out.getvalue()
    assert job.status == "pending" and queued == [job.pk]
    assert job.waiting_for_worker is False  # re-queued just now
    ImportJob.objects.filter(pk=job.pk).update(status="running", heartbeat_at=old, attempts=2)
    call_command("sweep_jobs", stdout=out)
    job.refresh_from_db()
    assert job.status == "failed" and "stalled 2 time(s)" in job.error and queued == [job.pk]
    call_command("sweep_jobs", stdout=(quiet := io.StringIO()))
    assert "no stalled jobs" in quiet.getvalue()
