"""Hugging Face export: load it back with `datasets`, check the card, determinism, filters."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client
from PIL import Image

from annotations.exporting import export_hf
from annotations.exporting.files import sha256_tree
from annotations.models import ExportJob, LabelClass, Patch, PatchStatus, ReviewAction
from annotations.organs import SPIDER_CITATION
from annotations.tilestore import read_tile


def review(patch: Patch, user, action: str, to: LabelClass | None = None, *,
           expect: int = 201) -> dict:
    """Record a decision the way a reviewer does: log in, read the patch's version from the
    API and POST the decision to the review endpoint (the path the review page uses). The
    review row, the patch's status, label and version are whatever that path makes of it."""
    client = Client()
    client.force_login(user)
    url = f"/api/projects/{patch.project.slug}/patches/{patch.pk}/"
    shown = client.get(url)
    assert shown.status_code == 200, shown.content
    body: dict = {"action": action, "patch_version": shown.json()["version"]}
    if to is not None:
        body["label"] = to.pk
    if action == ReviewAction.EXCLUDE:
        body["reason"] = "artefact"
    if action == ReviewAction.COMMENT:
        body["comment"] = "worth a second look"
    response = client.post(url + "reviews/", body, content_type="application/json")
    assert response.status_code == expect, response.content
    return response.json()


def add_predictions(project, patches: list[Patch], name: str = "head-v1") -> dict[int, float]:
    """An active model version with a prediction for each of ``patches`` (confidence by id)."""
    from inference.models import EmbeddingSpace, ModelVersion, Prediction

    classes = list(LabelClass.objects.filter(project=project).order_by("index"))
    space = EmbeddingSpace.objects.create(backbone="color-texture", embed_dim=8)
    version = ModelVersion.objects.create(
        project=project, name=name, space=space, head_file="x", head_sha256="0" * 64,
        class_names=[c.name for c in classes], source=ModelVersion.Source.TRAINED,
        is_active=True)
    confidences = {}
    for i, patch in enumerate(patches):
        probs = [0.1 / (len(classes) - 1)] * len(classes)
        probs[i % len(classes)] = 0.9
        Prediction.objects.create(model_version=version, patch=patch, probabilities=probs,
                                  predicted=classes[i % len(classes)], confidence=0.9,
                                  margin=0.8, entropy=0.3)
        confidences[patch.pk] = 0.9
    return confidences


def run_export(*args: str) -> dict:
    out = io.StringIO()
    call_command("export_hf", *args, "--json", stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue())


def front_matter(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])



@pytest.fixture(autouse=True)
def _own_datasets_cache(tmp_path, monkeypatch):
    """datasets caches what load_dataset read under a key that a later run's reused tmp path
    can collide with (stale rows from another database): one cache per test."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-cache")

@pytest.fixture
def reviewed(imported_4, users):
    """The sample project with corrections, confirmations by two reviewers, an undo and
    predictions for the first ten patches, every decision made through the review API."""
    patches = list(Patch.objects.filter(project=imported_4).order_by("id"))
    classes = list(LabelClass.objects.filter(project=imported_4).order_by("index"))
    other = {p.pk: next(c for c in classes if c.pk != p.current_label_id) for p in patches}
    review(patches[0], users["reviewer"], ReviewAction.CORRECT, other[patches[0].pk])
    review(patches[1], users["reviewer"], ReviewAction.CORRECT, other[patches[1].pk])
    review(patches[2], users["reviewer"], ReviewAction.CONFIRM)
    review(patches[2], users["admin"], ReviewAction.CONFIRM)
    review(patches[3], users["admin"], ReviewAction.CONFIRM)
    review(patches[3], users["reviewer"], ReviewAction.UNSURE)
    review(patches[4], users["reviewer"], ReviewAction.EXCLUDE)
    review(patches[5], users["reviewer"], ReviewAction.CONFIRM)
    review(patches[5], users["reviewer"], ReviewAction.UNDO)
    add_predictions(imported_4, patches[:10])
    return imported_4


def test_export_loads_back_with_datasets(reviewed, tmp_path):
    out = tmp_path / "hf"
    result = run_export("--project", reviewed.slug, "--out", str(out))
    names = list(LabelClass.objects.filter(project=reviewed).order_by("index")
                 .values_list("name", flat=True))
    exported = Patch.objects.filter(project=reviewed).exclude(status=PatchStatus.EXCLUDED)
    assert result["rows"] == exported.count()

    loaded = datasets.load_dataset(str(out))
    assert set(loaded) == {"train", "test"}
    for split in ("train", "test"):
        ds = loaded[split]
        assert ds.features["label"].names == names
        assert ds.features["original_label"].names == names
        assert isinstance(ds.features["image"], datasets.Image)
        assert "context" not in ds.features
        assert ds.num_rows == exported.filter(split=split).count()
        assert ds["patch_id"] == sorted(ds["patch_id"])  # fixed order
        raw = ds.cast_column("image", datasets.Image(decode=False))
        by_id = {p.pk: p for p in exported.filter(split=split).select_related(
            "centre_tile", "current_label", "original_label", "slide")}
        for row in raw:
            patch = by_id[row["patch_id"]]
            assert row["image"]["bytes"] == read_tile(patch.centre_tile)
            assert names[row["label"]] == patch.current_label.name
            assert names[row["original_label"]] == patch.original_label.name
            assert row["slide_id"] == patch.slide.name and row["image_name"] == patch.image_name
            assert row["review_status"] == patch.status
        assert ds[0]["image"].size == (224, 224)

    rows = {r["patch_id"]: r for split in loaded.values() for r in
            split.remove_columns("image")}
    # What the review path made of the fixture's decisions (one read required: the latest
    # reviewer's decision settles a patch; an undo restores the one before).
    first = list(Patch.objects.filter(project=reviewed).order_by("id")[:6])
    assert [rows[p.pk]["review_status"] for p in first if p.pk in rows] == [
        "corrected", "corrected", "confirmed", "unsure", "unreviewed"]
    assert first[4].pk not in rows  # excluded
    assert rows[first[0].pk]["label"] != rows[first[0].pk]["original_label"]
    assert (rows[first[2].pk]["n_reviews"], rows[first[2].pk]["agreement"]) == (2, 1.0)
    assert (rows[first[3].pk]["n_reviews"], rows[first[3].pk]["agreement"]) == (2, 0.5)
    assert (rows[first[5].pk]["n_reviews"], rows[first[5].pk]["agreement"]) == (0, None)
    predicted = [r for r in rows.values() if r["model_version"]]
    assert len(predicted) == 9  # ten predicted, one of them excluded
    assert all(r["model_version"] == "head-v1" and r["model_confidence"] == pytest.approx(0.9)
               for r in predicted)

    job = ExportJob.objects.get(pk=result["job"])
    assert job.status == ExportJob.Status.SUCCEEDED and job.kind == ExportJob.Kind.HF
    assert job.files == sha256_tree(out) and "README.md" in job.files
    assert job.counts["changed"] == 2 and job.done == job.total == result["rows"]
    assert "excluded" not in job.options["statuses"]


def test_card_declares_features_splits_counts_and_licence(reviewed, tmp_path):
    out = tmp_path / "hf"
    result = run_export("--project", reviewed.slug, "--out", str(out))
    matter = front_matter(out)
    names = list(LabelClass.objects.filter(project=reviewed).order_by("index")
                 .values_list("name", flat=True))
    assert matter["license"] == "cc-by-nc-4.0"
    assert matter["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "data/train-*"}, {"split": "test", "path": "data/test-*"}]}]
    features = {f["name"]: f["dtype"] for f in matter["dataset_info"]["features"]}
    assert features["image"] == "image"
    assert list(features["label"]["class_label"]["names"].values()) == names
    assert features["agreement"] == "float32" and features["patch_id"] == "int64"
    splits = {s["name"]: s["num_examples"] for s in matter["dataset_info"]["splits"]}
    assert splits == result["splits"]

    from huggingface_hub import DatasetCard

    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-nc-4.0"
    text = card.text
    assert SPIDER_CITATION in text and "CC BY-NC 4.0" in text
    assert f"{result['reviewed']} of {result['rows']} labels were reviewed; 2 differ" in text
    first = Patch.objects.filter(project=reviewed).order_by("id").select_related(
        "original_label", "current_label").first()
    assert f"| {first.original_label.name} | {first.current_label.name} | " in text
    assert "`head-v1` for 9 patches" in text
    assert "review status in unreviewed, confirmed, corrected, unsure, disputed" in text
    for name, n in result["classes"]["train"].items():
        assert f"| {name} | {n} |" in text


def test_a_class_name_with_a_bar_or_line_break_keeps_the_cards_tables_whole(imported, tmp_path):
    LabelClass.objects.filter(project=imported, index=0).update(name="Tumour | necrotic\nzone")
    out = tmp_path / "hf"
    run_export("--project", imported.slug, "--out", str(out))
    text = (out / "README.md").read_text(encoding="utf-8")
    [row] = [line for line in text.splitlines() if line.startswith("| Tumour")]
    assert row.startswith("| Tumour \\| necrotic zone | ")
    header = next(line for line in text.splitlines() if line.startswith("| class |"))
    assert row.replace("\\|", "").count("|") == header.count("|")
    names = front_matter(out)["dataset_info"]["features"][1]["dtype"]["class_label"]["names"]
    assert names["0"] == "Tumour | necrotic\nzone"  # the data keeps the name as it is


def test_same_state_exports_byte_identical_files(reviewed, tmp_path):
    a = run_export("--project", reviewed.slug, "--out", str(tmp_path / "a"))
    b = run_export("--project", reviewed.slug, "--out", str(tmp_path / "b"))
    assert a["files"] == b["files"]
    assert sha256_tree(tmp_path / "a") == sha256_tree(tmp_path / "b")
    review(Patch.objects.filter(project=reviewed).order_by("-id").first(),
           reviewed.memberships.first().user, ReviewAction.CONFIRM)
    c = run_export("--project", reviewed.slug, "--out", str(tmp_path / "c"))
    assert c["files"]["README.md"] != a["files"]["README.md"]


def test_status_filter_and_shards(reviewed, tmp_path):
    result = run_export("--project", reviewed.slug, "--out", str(tmp_path / "c"),
                        "--status", "corrected,confirmed")
    loaded = datasets.load_dataset(str(tmp_path / "c"))
    statuses = {s for split in loaded.values() for s in split["review_status"]}
    # patches 0-1 corrected, 2 confirmed; 3 was confirmed, then its latest reader said unsure
    assert statuses == {"corrected", "confirmed"} and result["rows"] == 3

    out = tmp_path / "sharded"
    export_hf(reviewed, out, shard_bytes=300_000)
    shards = sorted(p.name for p in (out / "data").iterdir())
    n_test = sum(name.startswith("test-") for name in shards)
    assert len(shards) > 2 and shards[0] == f"test-00000-of-{n_test:05d}.parquet"
    loaded = datasets.load_dataset(str(out))
    assert sum(s.num_rows for s in loaded.values()) == Patch.objects.filter(
        project=reviewed).exclude(status=PatchStatus.EXCLUDED).count()

    with pytest.raises(CommandError, match="unknown review status 'done'"):
        run_export("--project", reviewed.slug, "--out", str(tmp_path / "d"), "--status", "done")
    with pytest.raises(CommandError, match="not an empty folder"):
        run_export("--project", reviewed.slug, "--out", str(tmp_path / "c"))


def test_context_composite(reviewed, tmp_path):
    out = tmp_path / "ctx"
    run_export("--project", reviewed.slug, "--out", str(out), "--context", "composite",
               "--status", "corrected")
    ds = datasets.concatenate_datasets(list(datasets.load_dataset(str(out)).values()))
    assert isinstance(ds.features["context"], datasets.Image) and ds.num_rows == 2
    for row in ds:
        patch = Patch.objects.select_related("centre_tile").get(pk=row["patch_id"])
        context = row["context"].convert("RGB")
        assert context.size == (1120, 1120)
        centre = Image.open(io.BytesIO(read_tile(patch.centre_tile))).convert("RGB")
        assert context.crop((448, 448, 672, 672)).tobytes() == centre.tobytes()
        for position, tile in enumerate(patch.grid):
            if tile is None:  # missing neighbours are blank
                r, c = divmod(position, 5)
                cell = context.crop((c * 224, r * 224, c * 224 + 224, r * 224 + 224))
                assert cell.getextrema() == ((255, 255),) * 3


def test_a_slide_in_two_splits_is_refused(imported, tmp_path):
    patch = Patch.objects.filter(project=imported, split="train").select_related("slide").first()
    Patch.objects.filter(pk=patch.pk).update(split="test")
    with pytest.raises(CommandError, match=f"'{patch.slide.name}' \\(test and train\\)"):
        run_export("--project", imported.slug, "--out", str(tmp_path / "x"))
    job = ExportJob.objects.get()
    assert job.status == ExportJob.Status.FAILED and patch.slide.name in job.error
    assert not (tmp_path / "x").exists()


def test_unknown_project(db, tmp_path):
    with pytest.raises(CommandError, match="no project with slug 'nope'"):
        run_export("--project", "nope", "--out", str(tmp_path / "x"))


@pytest.mark.parametrize("context", [False, True])
def test_schema_is_what_datasets_writes(context):
    """The features JSON is written without importing `datasets`; it must match its own."""
    from annotations.exporting.features import arrow_schema, feature_spec

    spec, names = feature_spec(context), ("Fat", "Kaposi\u2019s sarcoma")
    reference = datasets.Features({
        f.name: datasets.Image() if f.kind == "image" else
        datasets.ClassLabel(names=list(names)) if f.kind == "class_label" else
        datasets.Value(f.kind) for f in spec})
    mine = arrow_schema(spec, names)
    assert datasets.Features.from_arrow_schema(mine) == reference
    assert mine.remove_metadata() == reference.arrow_schema.remove_metadata()
    assert json.loads(mine.metadata[b"huggingface"]) == json.loads(
        reference.arrow_schema.metadata[b"huggingface"])
