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
from inference.models import (
    InferenceJob,
    ModelVersion,
    Prediction,
    QueueScore,
    TileEmbedding,
)
from tests.modeling.spider_snapshot import build_spider_snapshot

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit hooks queue the steps



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
    assert metrics["evaluated_on"] == "test"
    cm_check = np.array(metrics["confusion_matrix"])
    assert metrics["accuracy"] == pytest.approx(np.trace(cm_check) / cm_check.sum())
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


def test_admin_trains_from_the_page_and_sees_metrics(client, users, imported_4, eager):
    client.force_login(users["admin"])
    response = client.post(f"/p/{imported_4.slug}/train/",
                           {"epochs": "2", "folds": "2", "head": "context"}, follow=True)
    page = response.content.decode()
    assert "Training queued" in page
    version = ModelVersion.objects.get(project=imported_4)
    assert f"Active: <strong>{version.name}</strong>" in page and "weighted F1" in page
    assert 'id="start-predict"' in page


def test_only_admins_start_model_jobs(client, users, imported_4):
    for name, expected in (("reviewer", 403), ("viewer", 403), ("outsider", 404)):
        client.force_login(users[name])
        assert client.post(f"/p/{imported_4.slug}/train/").status_code == expected
        assert client.post(f"/p/{imported_4.slug}/predict/").status_code == expected
        response = client.post(f"/api/projects/{imported_4.slug}/inference-jobs/",
                               {"kind": "train"}, content_type="application/json")
        assert response.status_code == expected
    assert not InferenceJob.objects.exists()


def test_api_starts_and_reports_jobs(client, users, imported_4, eager):
    client.force_login(users["admin"])
    base = f"/api/projects/{imported_4.slug}"
    response = client.post(f"{base}/inference-jobs/", {"kind": "predict"},
                           content_type="application/json")
    assert response.status_code == 400 and "no active model" in response.json()["detail"]
    train(imported_4, "--name", "api")
    response = client.post(f"{base}/inference-jobs/", {"kind": "predict"},
                           content_type="application/json")
    assert response.status_code == 201, response.content
    job = client.get(f"{base}/inference-jobs/{response.json()['id']}/").json()
    assert job["status"] == "succeeded" and job["model_version"] == "api"
    assert job["patches_done"] == job["patches_total"] == Patch.objects.filter(
        project=imported_4).count()
    models = client.get(f"{base}/models/").json()["results"]
    assert [m["name"] for m in models] == ["api"] and models[0]["is_active"]
    assert models[0]["metrics"]["evaluated_on"] == "test"


def test_page_shows_progress_rate_and_eta(client, users, imported_4, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from inference.registry import get_space

    client.force_login(users["viewer"])
    # The rate is measured up to the page's "now": freeze it, or a page that takes more
    # than ~0.2 s to render (a slow machine) reads 31 s instead of 30 s.
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    job = InferenceJob.objects.create(
        project=imported_4, kind=InferenceJob.Kind.PREDICT, space=get_space("color-texture"),
        status=InferenceJob.Status.RUNNING, stage=InferenceJob.Stage.EMBEDDING,
        tiles_total=1000, done=250, total=1000, unit="tiles", heartbeat_at=timezone.now(),
        stage_started_at=timezone.now() - timedelta(seconds=10))
    page = client.get(f"/p/{imported_4.slug}/").content.decode()
    assert "250 / 1000 tiles" in page and "25 tiles/s" in page and "30 s" in page
    assert '<meta http-equiv="refresh"' in page  # follows the running job
    assert job.eta_seconds == pytest.approx(30, abs=1)


def test_queues_follow_the_active_model(imported_4, users, eager, tmp_path):
    from annotations.queues import lease_next, queue_queryset, queue_sizes

    train(imported_4, "--name", "first", "--seed", "1")
    first = ModelVersion.objects.get(name="first")
    disputed = Prediction.objects.filter(model_version=first, disagree=True)
    assert queue_sizes(imported_4)["disagreement"] == disputed.count() > 0
    order = list(queue_queryset(imported_4, "disagreement").values_list("id", flat=True))
    expected = list(disputed.order_by("label_quality", "patch_id").values_list("patch_id",
                                                                                flat=True))
    assert order == expected  # worst label quality first
    uncertain = list(queue_queryset(imported_4, "uncertain").values_list("id", flat=True)[:5])
    assert uncertain == list(Prediction.objects.filter(model_version=first)
                             .order_by("-entropy", "patch_id")
                             .values_list("patch_id", flat=True)[:5])
    lease = lease_next(imported_4, users["reviewer"], "disagreement")[0]
    assert lease.patch_id == expected[0]

    train(imported_4, "--name", "second", "--seed", "2", "--no-activate")
    assert ModelVersion.objects.get(name="first").is_active
    from inference.queue_scores import activate_version

    second = ModelVersion.objects.get(name="second")
    activate_version(second)
    assert queue_sizes(imported_4)["disagreement"] == Prediction.objects.filter(
        model_version=second, disagree=True, patch__status="unreviewed").count()


def test_queues_follow_decisions_new_patches_and_version_switches(
        client, imported_4, users, eager, sample_spider, tmp_path):
    """Through the API: a decision takes a patch out of the model's queues and a reopen
    brings it back; patches imported after activation join the unreviewed queue (unscored,
    last); switching versions switches the queues without rewriting the patches."""
    from tests.test_import_folder import build_image_folder

    train(imported_4, "--name", "first", "--seed", "1")
    train(imported_4, "--name", "second", "--seed", "2", "--no-activate")
    api = f"/api/projects/{imported_4.slug}"

    def sizes() -> dict:
        return client.get(f"{api}/queues/").json()["sizes"]

    client.force_login(users["reviewer"])
    before = sizes()
    item = client.post(f"{api}/queues/disagreement/next/", {"count": 1},
                       content_type="application/json").json()["items"][0]
    decided = client.post(f"{api}/patches/{item['patch']}/reviews/",
                          {"action": "confirm", "patch_version": item["version"]},
                          content_type="application/json")
    assert decided.status_code == 201, decided.content
    after = sizes()
    assert after["disagreement"] == before["disagreement"] - 1
    assert after["unreviewed"] == before["unreviewed"] - 1
    # every version's queue row of the patch left the queues' indexes (their mirror)
    assert set(QueueScore.objects.filter(patch_id=item["patch"])
               .values_list("unreviewed", flat=True)) == {False}
    client.force_login(users["admin"])
    version = Patch.objects.get(pk=item["patch"]).version
    reopened = client.post(f"{api}/patches/{item['patch']}/reviews/",
                           {"action": "reopen", "patch_version": version},
                           content_type="application/json")
    assert reopened.status_code == 201, reopened.content
    assert sizes() == before
    assert set(QueueScore.objects.filter(patch_id=item["patch"])
               .values_list("unreviewed", flat=True)) == {True}

    build_image_folder(tmp_path / "more", sample_spider)
    call_command("import_folder", str(tmp_path / "more"), project=imported_4.slug,
                 stdout=io.StringIO())
    grown = Patch.objects.filter(project=imported_4, status="unreviewed").count()
    assert sizes()["unreviewed"] == grown > before["unreviewed"]
    client.force_login(users["reviewer"])
    last = client.post(f"{api}/queues/unreviewed/next/", {"count": grown},
                       content_type="application/json").json()["items"]
    newest = set(Patch.objects.filter(project=imported_4).order_by("-id")
                 .values_list("id", flat=True)[: grown - before["unreviewed"]])
    assert {i["patch"] for i in last[-len(newest):]} == newest  # unscored: at the end

    second = ModelVersion.objects.get(name="second")
    client.force_login(users["admin"])
    assert client.post(f"{api}/models/{second.pk}/activate/").status_code == 200
    expected = Prediction.objects.filter(model_version=second, disagree=True,
                                         patch__status="unreviewed").count()
    assert sizes()["disagreement"] == expected
