"""Actions: what pages, API views and commands do to change things. Each one checks the
request and the user's role (through :mod:`annotations.permissions`), writes, and, for long
work, records a job and enqueues its task once the transaction commits."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import Http404

from annotations import lifecycle, tasks
from annotations.exporting.errors import ExportError
from annotations.exporting.jobs import export_options, record_export_job, scratch_folder
from annotations.importing.jobs import check_import_path
from annotations.models import (
    ExportJob,
    ImportJob,
    LabelClass,
    Membership,
    Project,
    Role,
    TrackedJob,
)
from annotations.models.projects import COMMAND_KEYS
from annotations.permissions import Act, require

if TYPE_CHECKING:
    from django.contrib.auth.models import User

    from annotations.permissions import AnyUser


def get_or_create_project(slug: str, *, name: str = "", organ: str = "") -> Project:
    project, _ = Project.objects.get_or_create(
        slug=slug, defaults={"name": name or slug, "organ": organ.lower()})
    return project


def record_import_job(project: Project, kind: str, source: Path | str, options: dict[str, Any],
                      *, confined: bool, user: User | None = None) -> ImportJob:
    """The job record of an import; ``confined`` unless the operator ran a command."""
    return ImportJob.objects.create(project=project, kind=kind, source=str(source),
                                    options=options, created_by=user, confined=confined)


def start_import(project: Project, user: AnyUser, kind: str, path: str,
                 options: dict[str, Any]) -> ImportJob:
    """Queue an import from a server folder, or of a whole-slide file (checked against
    SPIDER_IMPORT_ROOTS)."""
    author = require(user, project, Act.IMPORT)
    if kind not in ImportJob.Kind.values:
        raise ValidationError(f"unknown import kind {kind!r}")
    if kind == ImportJob.Kind.SLIDE:
        source = check_import_path(path, file=True)
        options = slide_options(options)
    else:
        source = check_import_path(path)
    with transaction.atomic():
        if (twin := lifecycle.live_twin(ImportJob, project)) is not None:
            raise ValidationError(_busy(twin))
        job = record_import_job(project, kind, source, options, confined=True,
                                user=author)
        transaction.on_commit(lambda: tasks.run_import_job.delay(job.pk))
    return job


def slide_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options of a slide import, checked: mpp (for files that lack it), minimum
    tissue fraction and split."""
    checked: dict[str, Any] = {"split": options.get("split") or "train"}
    if checked["split"] not in ("train", "test"):
        raise ValidationError(f"split {checked['split']!r}: expected train or test")
    for key, low, high in (("mpp", 0.05, 20.0), ("min_tissue", 0.0, 1.0)):
        raw = options.get(key)
        if raw is None or raw == "":
            checked[key] = None
            continue
        try:
            value = float(raw)
        except (TypeError, ValueError):
            raise ValidationError(f"{key} {raw!r} is not a number") from None
        if not low <= value <= high:
            raise ValidationError(f"{key} must be between {low} and {high}")
        checked[key] = value
    return checked


def _busy(twin: TrackedJob) -> str:
    return (f"{twin.job_type} job {twin.pk} is already {twin.state}: wait for it, or "
            f"{'resume' if twin.is_stalled else 'cancel'} it first")


def start_export(project: Project, user: AnyUser, kind: str, statuses: list[str] | None,
                 context: str = "none") -> ExportJob:
    """Queue an export for a worker (raises ValidationError for bad options)."""
    author = require(user, project, Act.EXPORT)
    try:
        options = export_options(kind, statuses, context)
    except ExportError as exc:
        raise ValidationError(str(exc)) from exc
    with transaction.atomic():
        if (twin := lifecycle.live_twin(ExportJob, project, kind=kind)) is not None:
            raise ValidationError(_busy(twin))
        job = record_export_job(project, kind, options, user=author)
        transaction.on_commit(lambda: tasks.run_export_job.delay(job.pk))
    return job


def register_job_types() -> None:
    """The job models this app owns and their tasks (AnnotationsConfig.ready calls it)."""
    lifecycle.register_job_type(ImportJob.job_type, ImportJob, tasks.run_import_job.delay)
    lifecycle.register_job_type(ExportJob.job_type, ExportJob, tasks.run_export_job.delay,
                                cleanup=_remove_scratch)


def _remove_scratch(job: ExportJob) -> None:
    """An export given up after its worker died leaves no half-written files (on the disk
    of the worker that sweeps: one shared scratch volume, or the same machine)."""
    shutil.rmtree(scratch_folder(job), ignore_errors=True)


def find_job(user: AnyUser, project: Project, job_type: str, job_id: int) -> TrackedJob:
    """A job of ``project`` by type and id (404 when there is none)."""
    kind = lifecycle.JOB_TYPES.get(job_type)
    job = lifecycle.of_project(kind.model, project).filter(pk=job_id).first() if kind else None
    if job is None:
        raise Http404("No such job")
    return job


def resume_job(user: AnyUser, project: Project, job: TrackedJob) -> TrackedJob:
    """Run a stalled or failed job again: its executor carries on from what is stored."""
    require(user, project, Act.CONTROL_JOBS)
    with transaction.atomic():
        if not lifecycle.reset_for_resume(job):
            raise ValidationError(f"{job.job_type} job {job.pk} is {job.state}: only a "
                                  "stalled or failed job can be resumed")
        enqueue = lifecycle.JOB_TYPES[job.job_type].enqueue
        transaction.on_commit(lambda: enqueue(job.pk))
    return job


def cancel_job(user: AnyUser, project: Project, job: TrackedJob) -> TrackedJob:
    """Stop a pending or running job; its worker stops at its next progress write."""
    require(user, project, Act.CONTROL_JOBS)
    if not lifecycle.cancel(job):
        raise ValidationError(f"{job.job_type} job {job.pk} is {job.state}: only a pending "
                              "or running job can be cancelled")
    return job


def check_class_fields(project: Project, colour: str, hotkey: str,
                       exclude_id: int | None = None) -> None:
    if not re.fullmatch(r"#[0-9a-fA-F]{6}", colour):
        raise ValidationError(f"colour {colour!r} is not of the form #RRGGBB")
    if hotkey:
        if len(hotkey) != 1 or not hotkey.isalnum() or hotkey.lower() in COMMAND_KEYS:
            taken = ", ".join(f"{key} ({command})" for key, command in COMMAND_KEYS.items())
            raise ValidationError(f"hotkey {hotkey!r} must be one letter or digit other than "
                                  f"the review pages' command keys: {taken}")
        clashes = project.classes.filter(hotkey=hotkey)
        if exclude_id is not None:
            clashes = clashes.exclude(pk=exclude_id)
        clash = clashes.first()
        if clash:
            raise ValidationError(f"hotkey {hotkey!r} is already used by {clash.name!r}")


MAX_CLASS_NAME = LabelClass._meta.get_field("name").max_length or 255


def add_class(project: Project, name: str, colour: str = "#888888",
              hotkey: str = "") -> LabelClass:
    """Add a class at the next index; the name is kept exactly as typed."""
    if not name or name != name.strip():
        raise ValidationError("a class name must be non-empty, without surrounding spaces")
    if "\x00" in name or len(name) > MAX_CLASS_NAME:
        raise ValidationError(f"a class name must be at most {MAX_CLASS_NAME} characters, "
                              "without NUL characters")
    if project.classes.filter(name=name).exists():
        raise ValidationError(f"class {name!r} exists already")
    hotkey = hotkey.lower()  # the pages match the key pressed in lower case
    check_class_fields(project, colour, hotkey)
    return LabelClass.objects.create(project=project, name=name, colour=colour, hotkey=hotkey,
                                     index=project.classes.count())


def update_class(label: LabelClass, colour: str, hotkey: str) -> LabelClass:
    """Change how a class looks and is typed; names and indexes never change (data and models
    refer to them)."""
    hotkey = hotkey.lower()  # the pages match the key pressed in lower case
    check_class_fields(label.project, colour, hotkey, exclude_id=label.pk)
    label.colour, label.hotkey = colour, hotkey
    label.save(update_fields=["colour", "hotkey"])
    return label


@transaction.atomic
def set_membership(project: Project, user: User, role: str) -> Membership:
    """Give ``user`` ``role`` in ``project`` (adding them if they are not a member)."""
    if Role(role) != Role.ADMIN:
        _keep_an_admin(project, user)
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": Role(role).value})
    return membership


@transaction.atomic
def remove_membership(project: Project, user: User) -> None:
    _keep_an_admin(project, user)
    Membership.objects.filter(project=project, user=user).delete()


def _keep_an_admin(project: Project, leaving: User) -> None:
    """Refuse to leave ``project`` without an admin (only a server administrator could then
    manage its members, classes and settings): ``leaving`` stops being one of its admins."""
    admins = list(Membership.objects.select_for_update().filter(
        project=project, role=Role.ADMIN).values_list("user_id", flat=True))
    if admins == [leaving.pk]:
        raise ValidationError(f"{leaving.get_username()} is the only admin of {project.name}: "
                              "make someone else admin first")
