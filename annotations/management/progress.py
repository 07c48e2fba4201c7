"""Shared base for long-running commands: a progress bar on a terminal, a summary at the end."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.checks import Tags
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from annotations import lifecycle
from annotations.actions import get_or_create_project, record_import_job
from annotations.importing import ImportAborted, SourceError
from annotations.importing.report import ImportReport
from annotations.importing.run import Progress
from annotations.organs import organ_classes


class ProgressCommand(BaseCommand):
    """Adds ``--json``; subclasses call :meth:`progress_bar` and :meth:`finish`.

    Only the model and database checks run first: the admin and URL checks import every
    view of the site (about 0.3 s here, half the read-and-hash floor of a 5,000-record
    import) and guard nothing a data command touches. ``manage.py check`` and every
    server start still run them all.
    """

    requires_system_checks = [Tags.models, Tags.database]

    def add_arguments(self, parser) -> None:
        parser.add_argument("--json", action="store_true",
                            help="print one JSON object at the end instead of the summary line")

    @contextmanager
    def progress_bar(self, description: str, *, json_output: bool) -> Iterator[Progress]:
        show = not json_output and sys.stderr.isatty()
        bar = tqdm(desc=description, total=None, unit="B", unit_scale=True, disable=not show,
                   file=sys.stderr, dynamic_ncols=True)

        def update(done: int, total: int | None, unit: str) -> None:
            if bar.total != total:
                bar.total = total
                bar.unit = "B" if unit == "bytes" else f" {unit}"
                bar.unit_scale = unit == "bytes"
            bar.n = done
            bar.refresh()

        try:
            yield update
        finally:
            bar.close()

    def finish(self, result: dict, summary: str, *, json_output: bool) -> None:
        if json_output:
            self.stdout.write(json.dumps(result, ensure_ascii=False))
        else:
            self.stdout.write(self.style.SUCCESS(summary))


class ImportCommand(ProgressCommand):
    """Base of the import commands: project, job record, progress bar, report, exit status."""

    kind: str = ""

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("path", type=Path)
        parser.add_argument("--project", required=True, help="project slug (created if new)")
        parser.add_argument("--link", action="store_true",
                            help="keep image files where they are instead of copying them")
        parser.add_argument("--strict", action="store_true",
                            help="roll the whole import back if any record is bad")

    def list_skipped(self, report: ImportReport, label: str) -> None:
        """One stderr line per bad record the report kept, then how many more there were."""
        for bad in report.skipped:
            self.stderr.write(f"{label} {bad.index} ({bad.file}): {bad.reason}")
        if (more := report.skipped_total - len(report.skipped)) > 0:
            self.stderr.write(f"... and {more} more bad record(s), not listed")

    def run_import(self, project, path: Path, job, progress, options: dict):
        raise NotImplementedError

    def handle(self, *args, path: Path, project: str, json: bool, **options) -> None:
        try:
            if options.get("organ"):
                organ_classes(options["organ"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        target = get_or_create_project(project, organ=options.get("organ") or "")
        job_options = {k: options.get(k) for k in ("organ", "link", "strict") if k in options}
        job = record_import_job(target, self.kind, path, job_options, confined=False)
        start, cpu = time.perf_counter(), time.process_time()
        try:
            with self.progress_bar(f"import {path.name}", json_output=json) as progress:
                reports: list = []
                lifecycle.run(job, lambda j: reports.append(
                    self.run_import(target, path, j, progress, options)))
                if not reports:
                    raise CommandError(f"import job {job.pk} was cancelled")
                report = reports[0]
        except ImportAborted as exc:
            if json:
                self.finish(exc.report.as_dict(), "", json_output=True)
            self.list_skipped(exc.report, "record")
            raise CommandError(f"--strict: {exc}") from exc
        except (SourceError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if not json:
            self.list_skipped(report, "skipped record")
        # the import's own time, as export_hf reports its own (the benches compare them)
        timing = {"seconds": round(time.perf_counter() - start, 3),
                  "cpu_seconds": round(time.process_time() - cpu, 3)}
        self.finish({**report.as_dict(), **timing}, report.summary_line(), json_output=json)
