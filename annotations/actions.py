"""Writes that pages, API views, commands and tasks share (validate, authorise, then write)."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError
from django.db import transaction

from annotations.models import ImportJob, Membership, Project, Role


def get_or_create_project(slug: str, *, name: str = "", organ: str = "") -> Project:
    project, _ = Project.objects.get_or_create(
        slug=slug, defaults={"name": name or slug, "organ": organ.lower()})
    return project


def record_import_job(project: Project, kind: str, source: Path | str, options: dict,
                      user=None) -> ImportJob:
    return ImportJob.objects.create(project=project, kind=kind, source=str(source),
                                    options=options, created_by=user)


def start_import(project: Project, user, kind: str, path: str, options: dict) -> ImportJob:
    """Queue an import from a server folder (checked against SPIDER_IMPORT_ROOTS)."""
    from annotations.importing.jobs import check_import_path
    from annotations.tasks import run_import_job

    source = check_import_path(path)
    if kind not in ImportJob.Kind.values:
        raise ValidationError(f"unknown import kind {kind!r}")
    with transaction.atomic():
        job = record_import_job(project, kind, source, options, user=user)
        transaction.on_commit(lambda: run_import_job.delay(job.pk))
    return job


@transaction.atomic
def set_membership(project: Project, user, role: str) -> Membership:
    """Give ``user`` ``role`` in ``project`` (adding them if they are not a member)."""
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": Role(role).value})
    return membership


def remove_membership(project: Project, user) -> None:
    Membership.objects.filter(project=project, user=user).delete()
