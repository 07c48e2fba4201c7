"""Model versions, the embedding cache, predictions and head training, through the commands.

Steps run in-process here (Celery eager); tests/test_inference_worker.py runs them on real
workers over Redis.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command

from annotations.models import LabelClass, Patch, Split, Tile
from inference.models import InferenceJob, ModelVersion, Prediction, TileEmbedding
from tests.modeling.spider_snapshot import build_spider_snapshot

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit hooks queue the steps


@pytest.fixture
def eager():
    """Run Celery steps in this process."""
    from spider_web.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


def train(project, *extra: str) -> dict:
    out = io.StringIO()
    call_command("train_head", "--project", project.slug, "--epochs", "3", "--folds", "2",
                 "--json", "--backbone", "color-texture", *extra, stdout=out,
                 stderr=io.StringIO())
    return json.loads(out.getvalue())


def test_train_head_embeds_once_trains_and_predicts_every_patch(imported_4, eager):
    result = train(imported_4, "--name", "first")
    version = ModelVersion.objects.get(project=imported_4, name="first")
    assert version.is_active and version.source == ModelVersion.Source.TRAINED
    assert version.class_names == list(LabelClass.objects.filter(project=imported_4)
                                       .order_by("index").values_list("name", flat=True))
    metrics = result["metrics"]
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["evaluated_on"] == "test"
    assert set(metrics["per_class_f1"]) == set(version.class_names)
    cm = np.array(metrics["confusion_matrix"])
    assert cm.sum() == metrics["n"] == Patch.objects.filter(
        project=imported_4, split=Split.TEST).count()

    # One embedding per tile, however many patches share it.
    tiles = Tile.objects.filter(project=imported_4).count()
    assert TileEmbedding.objects.filter(tile__project=imported_4).count() == tiles
    assert tiles < 25 * Patch.objects.filter(project=imported_4).count()

    predictions = Prediction.objects.filter(model_version=version)
    assert predictions.count() == Patch.objects.filter(project=imported_4).count()
    train_oof = predictions.filter(patch__split=Split.TRAIN).values_list("out_of_fold", flat=True)
    assert all(train_oof) and not any(
        predictions.filter(patch__split=Split.TEST).values_list("out_of_fold", flat=True))
    for p in predictions[:20]:
        assert abs(sum(p.probabilities) - 1) < 1e-4
        assert p.predicted.name == version.class_names[int(np.argmax(p.probabilities))]
        assert p.disagree == (p.predicted_id != p.scored_label_id)
        assert p.label_quality == pytest.approx(
            p.probabilities[version.class_names.index(p.scored_label.name)], abs=1e-5)

    job = InferenceJob.objects.get(project=imported_4)
    assert job.status == InferenceJob.Status.SUCCEEDED and job.model_version == version
    assert job.tiles_done == job.tiles_total == tiles


def test_same_seed_same_head_and_metrics(imported_4, eager):
    first = train(imported_4, "--name", "a", "--seed", "7")
    second = train(imported_4, "--name", "b", "--seed", "7")
    a, b = (ModelVersion.objects.get(project=imported_4, name=n) for n in "ab")
    assert a.head_sha256 == b.head_sha256
    assert first["metrics"] == second["metrics"]
    assert TileEmbedding.objects.filter(tile__project=imported_4).count() == Tile.objects.filter(
        project=imported_4).count()  # the second run re-used the cache


def test_registered_head_predicts_from_the_cache(imported_4, eager, tmp_path):
    train(imported_4, "--name", "trained")
    trained = ModelVersion.objects.get(name="trained")
    head_file = tmp_path / "head.safetensors"
    with default_storage.open(trained.head_file, "rb") as src:
        head_file.write_bytes(src.read())
    call_command("register_model", project=imported_4.slug, name="copy", backbone="color-texture",
                 head=str(head_file), stdout=io.StringIO())
    embedded = TileEmbedding.objects.count()

    out = io.StringIO()
    call_command("predict", project=imported_4.slug, model="copy", wait=True, json=True,
                 stdout=out, stderr=io.StringIO())
    assert json.loads(out.getvalue())["status"] == InferenceJob.Status.SUCCEEDED
    copy = ModelVersion.objects.get(name="copy")
    assert not copy.is_active  # the trained one stays active unless --activate
    assert TileEmbedding.objects.count() == embedded  # nothing embedded twice
    mine = dict(Prediction.objects.filter(model_version=copy, patch__split=Split.TEST)
                .values_list("patch_id", "predicted_id"))
    theirs = dict(Prediction.objects.filter(model_version=trained, patch__split=Split.TEST)
                  .values_list("patch_id", "predicted_id"))
    assert mine == theirs and len(mine) > 0  # same head, same test-split answers


def test_register_spider_snapshot_and_class_mismatch(imported_4, eager, tmp_path):
    classes = list(LabelClass.objects.filter(project=imported_4).order_by("index")
                   .values_list("name", flat=True))
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    build_spider_snapshot(good, list(reversed(classes)))  # same names, other order
    build_spider_snapshot(bad, [*classes[:-1], "Kaposi’s sarcoma"])
    call_command("register_model", project=imported_4.slug, name="spider",
                 backbone="hibou-tiny", spider_model=str(good), stdout=io.StringIO())
    version = ModelVersion.objects.get(name="spider")
    assert version.class_names == classes and version.space.backbone == "hibou-tiny"
    assert version.space.weights_sha256  # the bundled backbone was saved and hashed

    with pytest.raises(CommandError) as err:
        call_command("register_model", project=imported_4.slug, name="bad",
                     backbone="hibou-tiny", spider_model=str(bad), stdout=io.StringIO())
    assert "Kaposi’s sarcoma" in str(err.value) and classes[-1] in str(err.value)
    assert not ModelVersion.objects.filter(name="bad").exists()


def test_predict_without_a_model_says_what_to_do(imported_4):
    with pytest.raises(CommandError, match="no active model"):
        call_command("predict", project=imported_4.slug, stdout=io.StringIO())
