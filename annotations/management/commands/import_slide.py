"""manage.py import_slide PATH... --project P: whole-slide images in, one import job each."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError

from annotations import lifecycle
from annotations.actions import get_or_create_project, record_import_job
from annotations.importing import ImportReport, SourceError, import_slide
from annotations.importing.run import Progress
from annotations.management.progress import ProgressCommand
from annotations.models import ImportJob


class Command(ProgressCommand):
    help = ("Tile whole-slide images (any format OpenSlide reads) into a project: every tissue "
            "tile at 20x becomes an unlabelled patch with its 5x5 neighbours from the same grid.")

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
        parser.add_argument("--project", required=True, help="project slug (created if new)")
        parser.add_argument("--mpp", type=float, default=None,
                            help="microns per pixel of level 0, for files that do not say")
        parser.add_argument("--min-tissue", type=float, default=None,
                            help="keep tiles with at least this tissue fraction "
                                 "(default: SPIDER_SLIDE_MIN_TISSUE)")
        parser.add_argument("--split", default="train", choices=["train", "test", ""],
                            help="split of the new patches (SPIDER splits by slide)")
        parser.add_argument("--name", default="",
                            help="slide name (default: the file name without its suffix); "
                                 "only with one PATH")

    def handle(self, *args, paths: list[Path], project: str, json: bool, **options) -> None:
        if options["name"] and len(paths) > 1:
            raise CommandError("--name names one slide: give one PATH with it")
        if options["min_tissue"] is not None and not 0 <= options["min_tissue"] <= 1:
            raise CommandError("--min-tissue is a fraction between 0 and 1")
        target = get_or_create_project(project)
        reports: list[dict] = []
        failures: list[str] = []
        for path in paths:
            job_options = {"mpp": options["mpp"], "min_tissue": options["min_tissue"],
                           "split": options["split"], "name": options["name"]}
            job = record_import_job(target, ImportJob.Kind.SLIDE, path.resolve(),
                                    job_options, confined=False)
            done: list[ImportReport] = []
            try:
                with self.progress_bar(f"slide {path.name}", json_output=json) as progress:
                    def work(j: ImportJob, path: Path = path, progress: Progress = progress,
                             done: list[ImportReport] = done) -> None:
                        done.append(import_slide(
                            target, path, mpp=options["mpp"], min_tissue=options["min_tissue"],
                            split=options["split"], name=options["name"], job=j,
                            progress=progress))

                    lifecycle.run(job, work)
            except SourceError as exc:
                failures.append(str(exc))
                self.stderr.write(str(exc))
                continue
            if not done:
                failures.append(f"{path.name}: import job {job.pk} was cancelled")
                continue
            reports.append({"file": str(path), **done[0].as_dict()})
            if not json:
                self.stdout.write(self.style.SUCCESS(f"{path.name}: {done[0].summary_line()}"))
        if json:
            self.finish({"slides": reports, "errors": failures}, "", json_output=True)
        if failures:
            raise CommandError(f"{len(failures)} of {len(paths)} slide(s) not imported: "
                               + "; ".join(failures))
