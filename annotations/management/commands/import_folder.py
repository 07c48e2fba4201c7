from annotations.importing import import_folder
from annotations.management.progress import ImportCommand
from annotations.models import ImportJob


class Command(ImportCommand):
    help = ("Import class-per-folder images (ImageFolder layout, optional train/ and test/ at "
            "the top) as patches without context.")
    kind = ImportJob.Kind.FOLDER

    def run_import(self, project, path, job, progress, options):
        return import_folder(project, path, strict=options["strict"], link=options["link"],
                             job=job, progress=progress)
