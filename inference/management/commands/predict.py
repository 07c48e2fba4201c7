"""Queue predictions of a project's patches (embedding missing tiles first)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Project
from inference.actions import JobError, start_predict
from inference.management.waiting import wait_for_job


class Command(BaseCommand):
    help = "Embed missing tiles and predict every patch with a model version (Celery job)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--model", help="model version name (default: the active one)")
        parser.add_argument("--wait", action="store_true",
                            help="follow the job with a progress bar until it ends")
        parser.add_argument("--json", action="store_true", help="print the job as JSON")

    def handle(self, *args, project: str, model: str | None, wait: bool, **options) -> None:
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project {project!r}")
        try:
            job = start_predict(target, model=model, check=False)
        except JobError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"queued predict job {job.pk} ({job.tiles_total} tiles, "
                          f"{job.patches_total} patches)")
        if wait:
            job = wait_for_job(job)
        if options["json"]:
            self.stdout.write(json.dumps({"job": job.pk, "status": job.status,
                                          "summary": job.summary}))
        elif wait:
            if not job.summary:  # wait_for_job returns succeeded jobs only, which have one
                raise CommandError(f"predict job {job.pk} is {job.state} but recorded no "
                                   "summary")
            self.stdout.write(self.style.SUCCESS(
                f"predicted {job.patches_done} patches with {job.summary['model_version']}"))
