"""Register a model version from local files (no hub access needed or attempted)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Project
from inference.modeling import UnknownBackboneError, WeightLoadError
from inference.models import HeadKind
from inference.registry import RegistrationError, register_model


class Command(BaseCommand):
    help = ("Add a model version to a project from a local histai/SPIDER-<organ>-model "
            "snapshot (--spider-model) or a head weights file (--head).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--name", required=True, help="unique within the project")
        parser.add_argument("--backbone", default="hibou-l",
                            help="hibou-l, hibou-tiny, color-texture or timm:<name>")
        parser.add_argument("--backbone-weights", type=Path,
                            help="local weights file or HF snapshot folder of the backbone")
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--spider-model", type=Path,
                            help="local snapshot folder (config.json + model.safetensors)")
        source.add_argument("--head", type=Path, help="head weights (.safetensors or .pth)")
        parser.add_argument("--head-kind", choices=HeadKind.values, default=HeadKind.CONTEXT)
        parser.add_argument("--activate", action="store_true",
                            help="make it the project's active model (the first one always is)")

    def handle(self, *args, project: str, **options) -> None:
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project {project!r}")
        try:
            version = register_model(
                target, name=options["name"], backbone=options["backbone"],
                backbone_weights=options["backbone_weights"],
                spider_model=options["spider_model"], head_weights=options["head"],
                head_kind=options["head_kind"], activate=options["activate"],
            )
        except (RegistrationError, WeightLoadError, UnknownBackboneError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        state = "active" if version.is_active else "inactive"
        self.stdout.write(self.style.SUCCESS(
            f"registered {version.name} ({state}): {version.space}, "
            f"{len(version.class_names)} classes, head sha256 {version.head_sha256[:12]}"))
