from annotations.exporting.command import ExportCommand
from annotations.models import ExportJob


class Command(ExportCommand):
    help = ("Export one CSV line per patch: ids, split, original and current label, status, "
            "reviewers and the model's prediction, for spreadsheets.")
    kind = ExportJob.Kind.CSV
    out_help = "the CSV file to write (must not exist)"
    default_statuses_help = "all"
