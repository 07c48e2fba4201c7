"""Imports started in the browser cannot be walked out of SPIDER_IMPORT_ROOTS through symbolic
links, cannot be made to wait forever on a FIFO, and a job's error never quotes a file's
content (issue 13, item 8).

Each case starts the import from the project page as a project admin, as an attacker would,
runs it (Celery eager, on commit) and reads what members see: the job in the API and the
project page.
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.urls import reverse

from annotations.actions import set_membership
from annotations.models import ImportJob, Patch, Role
from tests.fifos import fifo_in_place

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "root:x:0:0:SECRET-LINE-FROM-OUTSIDE:/root:/bin/bash"


@pytest.fixture
def layout(tmp_path, settings, sample_spider):
    """``datasets/`` is the only import root; ``outside/`` holds what must never be read."""
    datasets, outside = tmp_path / "datasets", tmp_path / "outside"
    datasets.mkdir()
    outside.mkdir()
    (outside / "passwd").write_text(SECRET + "\n", encoding="utf-8")
    settings.SPIDER_IMPORT_ROOTS = [str(datasets)]
    return datasets, outside


def start(client, users, project, path: Path) -> ImportJob:
    client.force_login(users["admin"])
    client.post(reverse("start-import", args=[project.slug]),
                {"kind": "spider", "path": str(path)})
    job = ImportJob.objects.get(project=project)
    job.refresh_from_db()
    return job


def members_see(client, users, project) -> str:
    """Everything a viewer can read about the project's imports."""
    client.force_login(users["viewer"])
    api = client.get(f"/api/projects/{project.slug}/import-jobs/").content.decode()
    page = client.get(reverse("project-detail", args=[project.slug])).content.decode()
    return api + page


def test_metadata_json_linked_outside_a_root_is_refused_unread(
        client, users, project, layout, sample_spider, eager):
    datasets, outside = layout
    dataset = datasets / "skin"
    shutil.copytree(sample_spider, dataset)
    (dataset / "metadata.json").unlink()
    (dataset / "metadata.json").symlink_to(outside / "passwd")
    job = start(client, users, project, dataset)
    assert job.status == ImportJob.Status.FAILED
    assert "metadata.json: points outside the import folders" in job.error
    seen = members_see(client, users, project)
    assert "points outside the import folders" in seen
    assert "SECRET-LINE" not in seen and str(outside) not in job.error


def test_images_folder_linked_outside_a_root_is_refused(
        client, users, project, layout, sample_spider, eager):
    datasets, outside = layout
    dataset = datasets / "skin"
    dataset.mkdir()
    shutil.copy(sample_spider / "metadata.json", dataset / "metadata.json")
    shutil.copytree(sample_spider / "images", outside / "images")  # real images, wrong place
    (dataset / "images").symlink_to(outside / "images")
    job = start(client, users, project, dataset)
    assert job.status == ImportJob.Status.FAILED
    assert "images: points outside the import folders" in job.error
    assert not Patch.objects.filter(project=project).exists()


def test_a_browser_started_import_stays_confined_after_its_starter_is_deleted(
        client, users, project, layout, sample_spider, eager):
    """Whether a job was confined used to be read from created_by, which deleting the user
    sets null: another admin's resume then read the linked folder outside the roots."""
    datasets, outside = layout
    dataset = datasets / "skin"
    dataset.mkdir()
    shutil.copy(sample_spider / "metadata.json", dataset / "metadata.json")
    shutil.copytree(sample_spider / "images", outside / "images")
    (dataset / "images").symlink_to(outside / "images")
    starter = get_user_model().objects.create_user("starter", password="pw")
    set_membership(project, starter, Role.ADMIN)
    client.force_login(starter)
    client.post(reverse("start-import", args=[project.slug]),
                {"kind": "spider", "path": str(dataset)})
    job = ImportJob.objects.get(project=project)
    assert job.status == ImportJob.Status.FAILED and "points outside" in job.error
    starter.delete()

    client.force_login(users["admin"])
    resumed = client.post(f"/api/projects/{project.slug}/import-jobs/{job.pk}/resume/")
    assert resumed.status_code == 200
    job.refresh_from_db()
    assert job.created_by is None and job.attempts == 2
    assert job.status == ImportJob.Status.FAILED
    assert "images: points outside the import folders" in job.error
    assert not Patch.objects.filter(project=project).exists()


def test_one_image_linked_outside_is_skipped_naming_the_file(
        client, users, project, layout, sample_spider, eager):
    datasets, outside = layout
    dataset = datasets / "skin"
    shutil.copytree(sample_spider, dataset)
    name = json.loads((dataset / "metadata.json").read_text())[0]["image_name"]
    shutil.copy(dataset / "images" / name, outside / "tile.png")
    (dataset / "images" / name).unlink()
    (dataset / "images" / name).symlink_to(outside / "tile.png")
    job = start(client, users, project, dataset)
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    refused = [s for s in job.summary["skipped"] if s["file"] == name]
    assert refused and "outside the dataset folder" in refused[0]["reason"]
    assert not Patch.objects.filter(project=project, image_name=name).exists()


def test_a_fifo_where_an_image_should_be_is_skipped_not_waited_on(
        client, users, project, layout, sample_spider, eager):
    """Anyone can make a FIFO (mkfifo); opening one to read blocks until something writes to
    it, and an import that did would never finish. It is refused as not a regular file."""
    datasets, _ = layout
    dataset = datasets / "skin"
    shutil.copytree(sample_spider, dataset)
    name = json.loads((dataset / "metadata.json").read_text())[0]["image_name"]
    with fifo_in_place(dataset / "images" / name) as released:
        job = start(client, users, project, dataset)
    assert not released, "the import blocked on the FIFO"
    assert job.status == ImportJob.Status.SUCCEEDED, job.error
    refused = [s for s in job.summary["skipped"] if s["file"] == name]
    assert refused and refused[0]["reason"] == f"cannot read images/{name}: not a regular file"
    assert not Patch.objects.filter(project=project, image_name=name).exists()
    assert Patch.objects.filter(project=project).exists()  # the other records are in


def test_an_archive_part_linked_outside_a_root_is_refused(
        client, users, project, layout, sample_spider, eager):
    datasets, outside = layout
    with tarfile.open(outside / "spider-skin.tar", "w") as tar:
        tar.add(sample_spider, arcname="SPIDER-skin")
    dataset = datasets / "archive"
    dataset.mkdir()
    (dataset / "spider-skin.tar.aa").symlink_to(outside / "spider-skin.tar")
    job = start(client, users, project, dataset)
    assert job.status == ImportJob.Status.FAILED
    assert "spider-skin.tar.aa: points outside the import folders" in job.error
    assert not Patch.objects.filter(project=project).exists()


def test_a_broken_metadata_json_is_reported_without_its_content(
        client, users, project, layout, sample_spider, eager):
    """The JSON parser's message quotes the bytes around the error; the job's must not."""
    datasets, _ = layout
    dataset = datasets / "skin"
    shutil.copytree(sample_spider, dataset)
    (dataset / "metadata.json").write_text(SECRET + "\nAWS_SECRET_ACCESS_KEY=abc\n")
    job = start(client, users, project, dataset)
    assert job.status == ImportJob.Status.FAILED
    assert "metadata.json is not a valid JSON array" in job.error
    seen = members_see(client, users, project)
    assert "SECRET" not in job.error and "SECRET" not in seen


def test_the_command_line_may_still_follow_the_operators_links(
        project, layout, sample_spider):
    """The operator's own import (manage.py) is not confined to the browser's roots."""
    datasets, outside = layout
    shutil.copytree(sample_spider, outside / "skin")
    (datasets / "skin").symlink_to(outside / "skin")
    call_command("import_spider", str(datasets / "skin"), project=project.slug, json=True,
                 stdout=io.StringIO())
    assert Patch.objects.filter(project=project).exists()
