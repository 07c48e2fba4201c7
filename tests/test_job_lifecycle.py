"""The one job life cycle, as users meet it: a worker killed mid-import or mid-export leaves
a job shown as stalled, which an admin resumes (or cancels) from the API or the page, and the
resumed job finishes with everything there once and nothing left behind."""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotations.models import ExportJob, ImportJob, Patch
from tests.workers import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]

STALE_SECONDS = 3
# Beat every second and write every progress step, so a kill is seen within STALE_SECONDS.
WORKER_ENV = {"SPIDER_JOB_HEARTBEAT_SECONDS": "1", "SPIDER_JOB_STALE_SECONDS": str(STALE_SECONDS),
              "SPIDER_JOB_PROGRESS_SECONDS": "0"}


def wait_until(predicate, timeout: float, what: str, show=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f": {show()}" if show else ""))


def kill(process) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # no goodbye: the message stays unacknowledged
    process.wait()


def api_job(client, url: str) -> dict:
    response = client.get(url)
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def fast_stall(settings):
    settings.SPIDER_JOB_STALE_SECONDS = STALE_SECONDS


def test_import_killed_mid_way_is_stalled_then_resumed_to_completion(
        client, users, project, spider_copy, tmp_path, settings, fast_stall):
    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    records = json.loads((spider_copy / "metadata.json").read_text(encoding="utf-8"))
    # One record per transaction: slow enough to be killed between batches.
    env = {**WORKER_ENV, "SPIDER_IMPORT_ROOTS": str(tmp_path), "SPIDER_IMPORT_BATCH": "1"}
    first = start_worker(settings, "default", **env)
    second = None
    try:
        client.force_login(users["admin"])
        client.post(reverse("start-import", args=[project.slug]),
                    {"kind": "spider", "path": str(spider_copy)})
        job = ImportJob.objects.get(project=project)
        url = f"/api/projects/{project.slug}/import-jobs/{job.pk}/"

        def part_imported() -> bool:
            return 0 < Patch.objects.filter(project=project).count() < len(records) // 2

        wait_until(part_imported, 90, "the worker to import some records")
        kill(first)
        landed = Patch.objects.filter(project=project).count()
        assert 0 < landed < len(records), "killed too late to test"
        assert api_job(client, url)["state"] == "running"

        stalled = wait_until(lambda: (j := api_job(client, url))["state"] == "stalled" and j,
                             STALE_SECONDS + 5, "the job to be shown as stalled")
        assert stalled["status"] == "running" and stalled["heartbeat_at"]
        page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
        assert "stalled: no sign of its worker since" in page and "job-resume" in page

        client.force_login(users["reviewer"])  # reviewers may not steer jobs
        assert client.post(url + "resume/").status_code == 403
        second = start_worker(settings, "default", **env)  # (starting it purges the queue)
        client.force_login(users["admin"])
        resumed = client.post(url + "resume/")
        assert resumed.status_code == 200 and resumed.json()["state"] in ("pending", "running")
        done = wait_until(lambda: (j := api_job(client, url))["state"] in
                          ("succeeded", "failed") and j, 120, "the resumed import to end",
                          show=lambda: (api_job(client, url), second.poll(),
                                        second.stderr.read1(4000) if second.poll() else ""))
        assert done["state"] == "succeeded", done["error"]
        assert done["attempts"] == 2
        names = list(Patch.objects.filter(project=project).values_list("image_name",
                                                                           flat=True))
        assert sorted(names) == sorted(r["image_name"] for r in records)  # all, once each
        summary = done["summary"]
        assert summary["skipped"] == [], summary["skipped"][:3]  # no false "duplicates"
        assert summary["patches_existing"] == landed
        assert summary["patches_created"] == len(records) - landed
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)


def test_export_killed_mid_way_resumes_and_leaves_no_scratch_files(
        client, users, imported, settings, tmp_path, fast_stall):
    settings.SPIDER_SCRATCH_ROOT = str(tmp_path / "scratch")
    env = {**WORKER_ENV, "SPIDER_SCRATCH_ROOT": settings.SPIDER_SCRATCH_ROOT}
    first = start_worker(settings, "default", **env)
    second = None
    try:
        client.force_login(users["reviewer"])
        client.post(reverse("start-export", args=[imported.slug]),
                    {"kind": "hf", "context": "composite"})  # composites: seconds of work
        job = ExportJob.objects.get(project=imported)
        url = f"/api/projects/{imported.slug}/export-jobs/{job.pk}/"
        scratch = tmp_path / "scratch" / f"export-{job.pk}"

        wait_until(lambda: (j := api_job(client, url))["done"] > 0 and j["state"] == "running",
                   90, "the export to write some rows")
        kill(first)
        assert scratch.is_dir() and any(scratch.rglob("*")), "a killed export leaves files"
        wait_until(lambda: api_job(client, url)["state"] == "stalled", STALE_SECONDS + 5,
                   "the export to be shown as stalled")

        client.force_login(users["admin"])
        page = client.get(reverse("project-detail", args=[imported.slug])).content.decode()
        assert "job-resume" in page
        second = start_worker(settings, "default", **env)  # (starting it purges the queue)
        # The page's Resume button: a plain form post.
        client.post(reverse("control-job", args=[imported.slug, "export", job.pk, "resume"]))
        done = wait_until(lambda: (j := api_job(client, url))["state"] in
                          ("succeeded", "failed") and j, 180, "the resumed export to end")
        assert done["state"] == "succeeded", done["error"]
        assert done["counts"]["rows"] == Patch.objects.filter(project=imported).count()
        assert not scratch.exists(), "the scratch folder outlived the job"
        download = client.get(reverse("export-download", args=[imported.slug, job.pk]))
        assert download.status_code == 200
    finally:
        stop_worker(first)
        if second is not None:
            stop_worker(second)


def test_cancel_stops_a_running_export_at_its_next_step(client, users, imported, settings,
                                                         tmp_path, fast_stall):
    settings.SPIDER_SCRATCH_ROOT = str(tmp_path / "scratch")
    worker = start_worker(settings, "default", **WORKER_ENV,
                          SPIDER_SCRATCH_ROOT=settings.SPIDER_SCRATCH_ROOT)
    try:
        client.force_login(users["reviewer"])
        client.post(reverse("start-export", args=[imported.slug]),
                    {"kind": "hf", "context": "composite"})
        job = ExportJob.objects.get(project=imported)
        url = f"/api/projects/{imported.slug}/export-jobs/{job.pk}/"
        wait_until(lambda: api_job(client, url)["done"] > 0, 90, "the export to start")
        client.force_login(users["admin"])
        cancelled = client.post(url + "cancel/")
        assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
        scratch = tmp_path / "scratch" / f"export-{job.pk}"
        wait_until(lambda: not scratch.exists(), 30, "the worker to stop and clean up")
        job.refresh_from_db()
        assert job.status == ExportJob.Status.CANCELLED and not job.result_file
        again = client.post(url + "cancel/")
        assert again.status_code == 400 and "cancelled" in again.json()["detail"]
    finally:
        stop_worker(worker)


def test_only_stalled_or_failed_jobs_resume(client, users, project, fast_stall):
    now = timezone.now()
    live = ImportJob.objects.create(project=project, kind="spider", source="/x",
                                    status=ImportJob.Status.RUNNING, heartbeat_at=now)
    done = ImportJob.objects.create(project=project, kind="spider", source="/x",
                                    status=ImportJob.Status.SUCCEEDED)
    client.force_login(users["admin"])
    base = f"/api/projects/{project.slug}/import-jobs"
    for job in (live, done):
        response = client.post(f"{base}/{job.pk}/resume/")
        assert response.status_code == 400, response.content
        assert "only a stalled or failed job can be resumed" in response.json()["detail"]
    ImportJob.objects.filter(pk=live.pk).update(heartbeat_at=now - timedelta(seconds=60))
    assert client.get(f"{base}/{live.pk}/").json()["state"] == "stalled"
    assert client.post(f"{base}/{live.pk}/resume/").json()["state"] == "pending"
    assert client.post(f"{base}/{done.pk}/cancel/").status_code == 400


@pytest.mark.django_db
def test_steps_joining_a_running_job_are_not_counted_as_attempts(project):
    """A multi-step job (embedding re-queues itself every few seconds) is taken up once;
    only a take-over of a stalled job counts again, so the sweep's limit means deaths."""
    from annotations import lifecycle

    job = ImportJob.objects.create(project=project, kind="spider", source="/x")
    assert lifecycle.claim(job, exclusive=False) and job.attempts == 1
    for _ in range(5):
        assert lifecycle.claim(job, exclusive=False)
    assert job.attempts == 1
    assert not lifecycle.claim(job)  # exclusive: a live job is not taken twice
    ImportJob.objects.filter(pk=job.pk).update(
        heartbeat_at=timezone.now() - timedelta(hours=1))
    assert lifecycle.claim(job, exclusive=False) and job.attempts == 2
