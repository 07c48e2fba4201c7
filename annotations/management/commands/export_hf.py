import os

from django.core.management.base import CommandError

from annotations.exporting import export_options
from annotations.exporting.command import ExportCommand
from annotations.exporting.jobs import CONTEXT_CHOICES
from annotations.models import ExportJob


class Command(ExportCommand):
    help = ("Export a project as a Hugging Face dataset repo (parquet shards with embedded "
            "images and a dataset card), optionally pushed to the Hub.")
    kind = ExportJob.Kind.HF

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--context", choices=CONTEXT_CHOICES, default="none",
                            help="composite: add the 1120x1120 context of each patch")
        parser.add_argument("--push-to-hub", metavar="REPO_ID",
                            help="upload the folder to this Hub dataset repo afterwards")
        parser.add_argument("--token-env", metavar="VAR", default="HF_TOKEN",
                            help="environment variable holding the Hub token (default HF_TOKEN)")
        parser.add_argument("--private", action="store_true",
                            help="create the Hub repo as private")

    def options_for(self, options: dict) -> dict:
        return export_options(self.kind, options["status"], options["context"],
                              push_to_hub=options["push_to_hub"],
                              private=options["private"] if options["push_to_hub"] else None,
                              token_env=options["token_env"] if options["push_to_hub"] else None)

    def token_for(self, options: dict) -> str | None:
        if not options["push_to_hub"]:
            return None
        token = os.environ.get(options["token_env"], "")
        if not token:
            raise CommandError(f"--push-to-hub needs a Hub token in the environment variable "
                               f"{options['token_env']}, which is not set")
        return token
