"""Take the kept per-project counts again from the patches and reviews (annotations.counts):
after rows were written with triggers off (``session_replication_role = replica``, as bulk
loaders do), or to check them."""

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotations.counts import project_counts, recount
from annotations.models import Project


class Command(BaseCommand):
    help = "Recount every project's (or one project's) patch and review counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", help="a project's slug (default: all projects)")

    def handle(self, *args, **options) -> None:
        projects = Project.objects.order_by("slug")
        if options["project"]:
            projects = projects.filter(slug=options["project"])
            if not projects.exists():
                raise CommandError(f"no project {options['project']!r}")
        for project in projects:
            recount(project)
            counts = project_counts(project)
            self.stdout.write(f"{project.slug}: {counts.get('all')} patches, "
                              f"{counts.get('reviews')} reviews recounted")
