"""Train a head on the project's current labels (embedding missing tiles first)."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from annotations.models import Project
from inference.actions import JobError, start_train
from inference.management.waiting import wait_for_job
from inference.options import TrainOptions


class Command(BaseCommand):
    help = ("Train the SPIDER context head on labelled train-split patches with K-fold "
            "out-of-fold scores, evaluate on the test split, save a model version (active "
            "unless worse than the active one). Options left out are chosen for the "
            "project's size: SPIDER's recipe at SPIDER's size.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--project", required=True)
        parser.add_argument("--epochs", type=int, help="most epochs (default: for the size; "
                            "SPIDER's 10 from 10,240 training patches)")
        parser.add_argument("--folds", type=int, default=5)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--batch-size", type=int,
                            help="default: SPIDER's 256, smaller below 10,240 patches so an "
                            "epoch has >= 25 optimiser steps")
        parser.add_argument("--lr", type=float, help="default: SPIDER's 4e-4 at batch 256, "
                            "1e-3 below")
        parser.add_argument("--patience", type=int, help="early stopping: epochs without a "
                            "lower out-of-fold loss (0: off; default for the size)")
        parser.add_argument("--repeats", type=int, help="out-of-fold runs averaged (default: "
                            "3 below 2,000 patches, else 1)")
        parser.add_argument("--head", choices=["context", "centre"], default="context")
        parser.add_argument("--name", default="", help="model version name (default: dated)")
        parser.add_argument("--backbone", help="default: the active model's, else "
                            "SPIDER_DEFAULT_BACKBONE")
        parser.add_argument("--backbone-weights", help="local weights for --backbone")
        parser.add_argument("--no-activate", action="store_true",
                            help="keep the current active model")
        parser.add_argument("--force-activate", action="store_true",
                            help="activate even if worse than the active model")
        parser.add_argument("--no-wait", action="store_true", help="queue and return")
        parser.add_argument("--json", action="store_true", help="print the result as JSON")

    def handle(self, *args, project: str, **o) -> None:
        target = Project.objects.filter(slug=project).first()
        if target is None:
            raise CommandError(f"no project {project!r}")
        if ((o["epochs"] is not None and o["epochs"] < 1) or o["folds"] < 2
                or (o["batch_size"] is not None and o["batch_size"] < 1)
                or (o["lr"] is not None and o["lr"] <= 0)
                or (o["patience"] is not None and o["patience"] < 0)
                or (o["repeats"] is not None and o["repeats"] < 1)):
            raise CommandError("--epochs, --batch-size and --repeats must be >= 1, --folds >= 2, "
                               "--lr > 0, --patience >= 0")
        options = TrainOptions(epochs=o["epochs"], folds=o["folds"], seed=o["seed"],
                               batch_size=o["batch_size"], lr=o["lr"], patience=o["patience"],
                               repeats=o["repeats"], head=o["head"], name=o["name"],
                               activate=not o["no_activate"], force_activate=o["force_activate"])
        try:
            if o["backbone"]:
                check_backbone(o["backbone"], o["backbone_weights"])
            job = start_train(target, options, backbone=o["backbone"],
                              weights=o["backbone_weights"], check=False)
        except (JobError, ValueError, LookupError, RuntimeError) as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"queued train job {job.pk} on "
                          f"{job.space or job.options['backbone']}")
        if o["no_wait"]:
            return
        job = wait_for_job(job)
        version = job.model_version
        if version is None:  # wait_for_job returns succeeded jobs only; training sets one
            raise CommandError(f"train job {job.pk} is {job.state} but recorded no model "
                               "version")
        if o["json"]:
            self.stdout.write(json.dumps({"job": job.pk, "model_version": version.name,
                                          "metrics": version.metrics,
                                          "training": version.training}))
            return
        m, t = version.metrics, version.training
        self.stdout.write(f"recipe: {t['recipe']}; trained {t['final_epochs']} epochs in the "
                          f"final fit (early stopping per fold: {t['best_epochs_per_fold']})")
        self.stdout.write(self.style.SUCCESS(
            f"trained {version.name}: accuracy {m['accuracy']:.3f}, balanced accuracy "
            f"{m['balanced_accuracy']:.3f}, weighted F1 {m['weighted_f1']:.3f} on "
            f"{m['n']} {m['evaluated_on']} patches; out-of-fold accuracy "
            f"{m['oof_accuracy']:.3f}"))
        activation = t.get("activation", {})
        style = self.style.SUCCESS if activation.get("activated") else self.style.WARNING
        self.stdout.write(style(f"{'active' if activation.get('activated') else 'inactive'}: "
                                f"{activation.get('reason', '')}"))


def check_backbone(name: str, weights: str | None) -> None:
    """Build the named backbone here, so a typo or bad weights file fails before queueing
    (this command may load torch: without a broker it trains in-process anyway)."""
    from inference.registry import get_space

    get_space(name, weights)
