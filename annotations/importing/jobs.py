"""Imports started from the project page: where they may read from, and how they run."""

from __future__ import annotations

from pathlib import Path

from django.core.exceptions import ValidationError

from annotations.models import ImportJob

from .errors import ImportAborted, SourceError
from .folder import import_folder
from .roots import BROWSER_IMPORTS_OFF, Confinement, configured_roots
from .slides import import_slide
from .spider import import_spider


def check_import_path(path: str, *, file: bool = False) -> Path:
    """A server folder (or, with ``file``, a whole-slide file) an import started from the
    browser may read: inside SPIDER_IMPORT_ROOTS, links resolved.

    Project admins are not server administrators, so they may only point at what the
    operator has put under one of those roots (e.g. /datasets in docker compose).
    """
    roots = configured_roots()
    if not roots:
        command = "import_slide" if file else "import_spider"
        raise ValidationError(BROWSER_IMPORTS_OFF.format(command=command))
    try:
        allowed = Confinement(roots).allows(Path(path))
        resolved = Path(path).resolve()
        kind_ok = resolved.is_file() if file else resolved.is_dir()
    except (OSError, ValueError) as exc:  # a NUL in it, a name too long for the system
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ValidationError(f"{path[:200]!r} is not a usable path: {reason}") from exc
    if not allowed:
        raise ValidationError(f"{path} is not inside an import folder "
                              f"({', '.join(str(r) for r in roots)})")
    if not kind_ok:
        raise ValidationError(f"{path} is not a {'file' if file else 'folder'}")
    return resolved


def execute_import_job(job: ImportJob) -> None:
    """Run ``job``; the outcome (report or error) is recorded on the job itself.

    A job someone started from the browser or the API (``confined``) reads only inside
    SPIDER_IMPORT_ROOTS, checked again here with every link resolved (the folder may have
    changed since it was queued), whoever resumes it and whether or not its starter's account
    still exists; one recorded by a management command is the operator's and reads where it
    says.
    """
    options = job.options or {}
    roots = configured_roots() if job.confined else None
    try:
        if job.kind == ImportJob.Kind.SPIDER:
            import_spider(job.project, job.source, organ=options.get("organ") or None,
                          link=bool(options.get("link")), strict=bool(options.get("strict")),
                          job=job, roots=roots)
        elif job.kind == ImportJob.Kind.SLIDE:
            import_slide(job.project, job.source, mpp=options.get("mpp"),
                         min_tissue=options.get("min_tissue"),
                         split=options.get("split", "train"), name=options.get("name") or "",
                         job=job, roots=roots)
        else:
            import_folder(job.project, job.source, link=bool(options.get("link")),
                          strict=bool(options.get("strict")), job=job, roots=roots)
    except (ImportAborted, SourceError, ValueError):
        pass  # already recorded on the job by the importer
