from annotations.exporting.command import ExportCommand
from annotations.models import ExportJob


class Command(ExportCommand):
    help = ("Export a project in SPIDER's own layout (metadata.json + images/), with the "
            "reviewed label as each record's class.")
    kind = ExportJob.Kind.SPIDER
