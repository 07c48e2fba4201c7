"""Imports started in the browser run on a real Celery worker over real Redis."""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from annotations.models import ImportJob, Patch
from tests.workers import start_worker, stop_worker

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker(settings, tmp_path):
    """A real Celery worker on the test database, media and import root, with the prefork
    pool of the default queue in docker-compose.yml: its task runs in a daemonic child,
    which must still be able to start the import's file-check processes."""
    process = start_worker(settings, "default", pool="prefork",
                           SPIDER_IMPORT_ROOTS=str(tmp_path))
    yield process
    stop_worker(process)


def wait_for(job: ImportJob, timeout: float = 90) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.status in (ImportJob.Status.SUCCEEDED, ImportJob.Status.FAILED):
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job.pk} still {job.status} after {timeout}s")


def test_admin_starts_an_import_that_a_worker_runs(client, users, project, spider_copy,
                                                    tmp_path, worker, settings):
    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    dataset = spider_copy  # a copy inside the import root
    client.force_login(users["admin"])
    response = client.post(reverse("start-import", args=[project.slug]),
                           {"kind": "spider", "path": str(dataset), "organ": ""}, follow=True)
    assert "Import queued" in response.content.decode()
    job = wait_for(ImportJob.objects.get(project=project))
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    assert job.summary["patches_created"] == Patch.objects.filter(project=project).count() > 0
    assert job.done == job.total and job.created_by == users["admin"]


def test_paths_outside_the_import_roots_are_refused(client, users, project, tmp_path,
                                                     settings):
    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path / "datasets")]
    (tmp_path / "datasets").mkdir()
    client.force_login(users["admin"])
    response = client.post(reverse("start-import", args=[project.slug]),
                           {"kind": "spider", "path": "/etc"}, follow=True)
    assert "is not inside an import folder" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_reviewers_cannot_start_imports(client, users, project, tmp_path, settings):
    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    client.force_login(users["reviewer"])
    response = client.post(reverse("start-import", args=[project.slug]),
                           {"kind": "spider", "path": str(tmp_path)})
    assert response.status_code == 403
    assert not ImportJob.objects.exists()


def test_a_job_that_cannot_start_is_recorded_as_failed(project, tmp_path):
    from annotations.actions import record_import_job
    from annotations.importing.jobs import execute_import_job

    bad_organ = record_import_job(project, ImportJob.Kind.SPIDER, tmp_path, {"organ": "liver"},
                                  confined=False)
    execute_import_job(bad_organ)
    bad_organ.refresh_from_db()
    assert bad_organ.status == ImportJob.Status.FAILED and "unknown organ 'liver'" in \
        bad_organ.error
    empty = record_import_job(project, ImportJob.Kind.FOLDER, tmp_path / "nope", {},
                              confined=False)
    execute_import_job(empty)
    empty.refresh_from_db()
    assert empty.status == ImportJob.Status.FAILED and "no images found" in empty.error
