from annotations.importing import import_spider
from annotations.management.progress import ImportCommand
from annotations.models import ImportJob


class Command(ImportCommand):
    help = ("Import a SPIDER dataset: an extracted folder (metadata.json + images/) or a folder "
            "holding the multi-part archive spider-<organ>.tar.*, read as one stream.")
    kind = ImportJob.Kind.SPIDER

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--organ", help="skin, colorectal, thorax or breast: only that "
                                            "organ's SPIDER classes are accepted")

    def run_import(self, project, path, job, progress, options):
        return import_spider(project, path, organ=options["organ"], link=options["link"],
                             strict=options["strict"], job=job, progress=progress)
