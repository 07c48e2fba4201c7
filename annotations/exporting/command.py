"""Shared base of the export commands: project, options, job record, progress bar, summary."""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import CommandError

from annotations import lifecycle
from annotations.management.progress import ProgressCommand
from annotations.models import Project

from .errors import ExportError
from .jobs import export_options, record_export_job, run_export


class ExportCommand(ProgressCommand):
    kind: str = ""
    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--project", required=True, help="project slug")
        parser.add_argument("--out", required=True, type=Path, help=self.out_help)
        parser.add_argument("--status", default="",
                            help="comma-separated review statuses to export "
                                 f"(default: {self.default_statuses_help})")

    out_help = "a new or empty folder"
    default_statuses_help = "all but excluded"

    def options_for(self, options: dict) -> dict:
        return export_options(self.kind, options["status"])

    def token_for(self, options: dict) -> str | None:
        return None

    def handle(self, *args, project: str, out: Path, json: bool, **options) -> None:
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project with slug {project!r}")
        try:
            job_options = self.options_for(options)
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        token = self.token_for(options)
        job = record_export_job(target, self.kind, {**job_options, "out": str(out.resolve())})
        start, cpu = time.perf_counter(), time.process_time()
        try:
            with self.progress_bar(f"export {target.slug}", json_output=json) as progress:
                outcome: list = []
                lifecycle.run(job, lambda j: outcome.append(
                    run_export(j, out, progress=progress, token=token)))
                if not outcome:
                    raise CommandError(f"export job {job.pk} was cancelled")
                result = outcome[0]
        except ExportError as exc:
            raise CommandError(str(exc)) from exc
        seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu
        counts = result.counts
        summary = (f"Exported {counts['rows']} patches of {target.slug} to {out} "
                   f"({len(result.files)} files, {counts['reviewed']} reviewed, "
                   f"{counts['changed']} changed) in {seconds:.1f}s; export job {job.pk}.")
        if job.options.get("commit_url"):
            summary += f" Pushed: {job.options['commit_url']}"
        self.finish({"job": job.pk, "out": str(out), "seconds": round(seconds, 3),
                     "cpu_seconds": round(cpu_seconds, 3), **counts,
                     "files": result.files, "commit_url": job.options.get("commit_url")},
                    summary, json_output=json)
