"""Training defaults fitted to the project's size (issue 14, item 1).

The recipe is pure Python (checked at 200, 2k and SPIDER's sizes); early stopping is checked
on the torch side; then ``train_head`` with no options trains a small real-tissue project
well and the version and the project page say what was chosen.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import torch
from django.core.management import call_command

from inference.modeling import TrainConfig, out_of_fold_fit, train_head
from inference.models import ModelVersion
from inference.options import TrainOptions
from inference.recipe import MIN_STEPS_PER_EPOCH, SPIDER_SIZED, choose


def test_spider_sized_projects_get_spiders_recipe():
    recipe = choose(TrainOptions(), 60_000, 400)
    assert (recipe.epochs, recipe.batch_size, recipe.lr) == (10, 256, 4e-4)
    assert (recipe.weight_decay, recipe.label_smoothing) == (0.01, 0.2)
    assert recipe.reasons["batch_size"] == recipe.reasons["epochs"] == "SPIDER's recipe"
    assert choose(TrainOptions(), SPIDER_SIZED, 50).batch_size == 256
    assert recipe.patience == 3  # early stopping may shorten SPIDER's 10 epochs, never lengthen


@pytest.mark.parametrize("n", [200, 2_000, SPIDER_SIZED - 1])
def test_small_projects_get_enough_optimiser_steps(n):
    recipe = choose(TrainOptions(), n, 8)
    assert recipe.steps_per_epoch >= min(MIN_STEPS_PER_EPOCH, n // 16)
    assert recipe.steps_per_epoch * recipe.epochs >= 1000
    assert recipe.batch_size <= 256 and recipe.patience
    assert "patches" in recipe.reasons["batch_size"]
    assert recipe.repeats == (3 if n < 2_000 else 1)  # out-of-fold runs averaged
    # SPIDER's batch would give a 200-patch project 1 step per epoch, 10 in all
    assert choose(TrainOptions(batch_size=256, epochs=10), n, 8).steps_per_epoch \
        == -(-n // 256)


def test_given_values_are_kept_and_folds_follow_the_slides():
    recipe = choose(TrainOptions(epochs=7, batch_size=64, lr=1e-2, patience=0, folds=5,
                                 repeats=1), 300, 3)
    assert (recipe.epochs, recipe.batch_size, recipe.lr, recipe.patience) == (7, 64, 1e-2, None)
    assert recipe.repeats == 1 and recipe.reasons["repeats"] == "given"
    assert recipe.folds == 3 and "3 slides" in recipe.reasons["folds"]
    assert {recipe.reasons[k] for k in ("epochs", "batch_size", "lr")} == {"given"}


def test_early_stopping_keeps_the_best_epoch_on_held_out_slides():
    """Labels that are noise overfit at once: the held-out loss rises, training stops after
    ``patience`` epochs and the kept weights are those of the best epoch."""
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(240, 16)).astype(np.float32))
    y = rng.integers(0, 3, 240)
    slides = np.repeat(np.arange(6), 40)
    config = TrainConfig(epochs=60, batch_size=16, lr=3e-3, head="centre", patience=4,
                         label_smoothing=0.0)
    oof = out_of_fold_fit(x, y, slides, num_classes=3, folds=3, config=config)
    assert all(len(curve) < 60 for curve in oof.held_loss)  # stopped early
    for curve in oof.held_loss:
        assert len(curve) - int(np.argmin(curve)) - 1 == 4  # stopped `patience` after the best
    # the kept weights are the best epoch's: their held-out loss is the curve's minimum
    held = np.flatnonzero(slides < 2)
    curve: list[float] = []
    head = train_head(x, y, num_classes=3, config=config, indices=np.flatnonzero(slides >= 2),
                      held=held, history=curve)
    with torch.no_grad():
        loss = torch.nn.functional.cross_entropy(head(x[held], None), torch.from_numpy(y[held]))
    assert float(loss) == pytest.approx(min(curve), rel=1e-4)


@pytest.mark.django_db(transaction=True)
def test_train_head_with_no_options_trains_well_and_says_what_it_chose(imported_4, eager,
                                                                         client, users):
    out = io.StringIO()
    call_command("train_head", "--project", imported_4.slug, "--backbone", "color-texture",
                 "--json", stdout=out, stderr=io.StringIO())
    result = json.loads(out.getvalue())
    version = ModelVersion.objects.get(project=imported_4)
    training = version.training
    n = training["train_patches"]
    assert n < SPIDER_SIZED
    assert training["batch_size"] == 16 and training["lr"] == 1e-3
    assert training["steps_per_epoch"] == -(-n // 16) and training["patience"] >= 5
    assert 1 <= training["final_epochs"] <= training["epochs"]
    assert training["repeats"] == 3  # a small project: three out-of-fold runs averaged
    assert len(training["best_epochs_per_fold"]) == training["folds"] * 3
    assert set(training["choices"]) >= {"batch_size", "epochs", "lr", "patience", "folds",
                                        "repeats"}
    # SPIDER's recipe on this project stays near chance (issue 14: 0.54); the defaults do not
    assert result["metrics"]["accuracy"] >= 0.8, result["metrics"]
    assert training["activation"]["activated"] is True

    client.force_login(users["viewer"])
    page = client.get(f"/p/{imported_4.slug}/").content.decode()
    assert "batch 16" in page and "early stopping" in page and "averaged over 3 runs" in page
    assert f"Trained on {n} patches" in page
