"""The similarity index and "more like this", through the API, on real embeddings: built
by a job, persisted, its seed first, filtered, updated for new patches and rebuilt for a new
embedding space."""

from __future__ import annotations

import numpy as np
import pytest
from django.core.files.storage import default_storage

from annotations.models import Patch
from inference.models import EmbeddingSpace, ModelVersion, TileEmbedding
from inference.queue_scores import activate_version
from inference.similarity.models import SimilarityIndex, SimilarityJob

pytest_plugins = ["tests.similarity_fixtures"]

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit hooks queue the jobs


def similar(client, project, seeds, **params):
    query = {"seeds": ",".join(map(str, seeds)), **params}
    return client.get(f"/api/projects/{project.slug}/similar/", query)


def test_seed_comes_back_first_from_its_own_query(client, users, embedded):
    client.force_login(users["viewer"])
    seed = Patch.objects.filter(project=embedded).order_by("id")[5]
    first = similar(client, embedded, [seed.pk])
    assert first.status_code == 409 and "being built" in first.json()["detail"]
    index = SimilarityIndex.objects.get(project=embedded)  # the eager job built it
    assert index.size == Patch.objects.filter(project=embedded).count()
    assert default_storage.exists(index.file)
    body = similar(client, embedded, [seed.pk], k=10).json()
    results = body["results"]
    assert results[0]["patch"] == seed.pk and results[0]["similarity"] == pytest.approx(1, abs=2e-3)
    assert len(results) == 10 and not body["index"]["stale"]
    scores = [r["similarity"] for r in results]
    assert scores == sorted(scores, reverse=True)
    # Every patch is the best match of its own query (exact search, fp16).
    for patch in Patch.objects.filter(project=embedded).order_by("?")[:15]:
        assert similar(client, embedded, [patch.pk], k=3).json()["results"][0]["patch"] == patch.pk


def test_filters_and_several_seeds(client, users, embedded):
    client.force_login(users["reviewer"])
    similar(client, embedded, [Patch.objects.filter(project=embedded).first().pk])  # builds
    patches = Patch.objects.filter(project=embedded).order_by("id")
    seeds = [patches[0].pk, patches[1].pk]
    test_only = similar(client, embedded, seeds, k=50, split="test").json()["results"]
    assert test_only and {r["split"] for r in test_only} == {"test"}
    label = patches[0].current_label
    same = similar(client, embedded, seeds, k=50, label=label.pk).json()["results"]
    assert same and {r["current_label"] for r in same} == {label.name}
    slide = patches[0].slide
    on_slide = similar(client, embedded, seeds, k=500, slide=slide.pk).json()["results"]
    assert {r["slide"] for r in on_slide} == {slide.name}
    assert len(on_slide) == patches.filter(slide=slide).count()
    assert similar(client, embedded, seeds, status="excluded").json()["results"] == []
    assert similar(client, embedded, [10**9]).status_code == 400  # not a patch of the project
    assert similar(client, embedded, ["x"]).status_code == 400


def test_new_patches_are_added_by_an_update(client, users, embedded):
    client.force_login(users["viewer"])
    patches = Patch.objects.filter(project=embedded).order_by("id")
    seed = patches[0]
    similar(client, embedded, [seed.pk])  # builds
    newest = patches.last()
    index = SimilarityIndex.objects.get(project=embedded)
    from inference.similarity import faiss_index, store

    # As if the newest patch had arrived after the build: an index file without it.
    older = store.load_copy(index)
    faiss_index.remove(older, [newest.pk])
    SimilarityIndex.objects.filter(pk=index.pk).update(
        file=store.save(embedded, index.space, older), max_patch_id=newest.pk - 1)
    body = similar(client, embedded, [seed.pk]).json()
    assert body["index"]["stale"]  # and an update job was queued (eager: done)
    update = SimilarityJob.objects.filter(project=embedded, kind="index").first()
    assert update.status == "succeeded" and update.summary["added"] == 1
    assert similar(client, embedded, [newest.pk]).json()["results"][0]["patch"] == newest.pk


def test_index_rebuilt_after_a_new_embedding_space(client, users, embedded):
    client.force_login(users["admin"])
    seed = Patch.objects.filter(project=embedded).order_by("id")[3]
    assert client.post(f"/api/projects/{embedded.slug}/similarity-jobs/", {"kind": "index"},
                       content_type="application/json").status_code == 201
    old = SimilarityIndex.objects.get(project=embedded)
    # A second backbone: every tile embedded again (random 16-d vectors stand in for it).
    space = EmbeddingSpace.objects.create(backbone="other-backbone", embed_dim=16)
    rng = np.random.default_rng(0)
    TileEmbedding.objects.bulk_create([
        TileEmbedding(space=space, tile_id=t, vector=rng.normal(size=16).astype(np.float16)
                      .tobytes()) for t in embedded.tiles.values_list("id", flat=True)])
    version = ModelVersion.objects.create(
        project=embedded, name="other", space=space, head_file="-", head_sha256="0" * 64,
        class_names=list(embedded.classes.values_list("name", flat=True)),
        source="registered")
    activate_version(version)
    assert similar(client, embedded, [seed.pk]).status_code == 409  # not for the new space
    rebuilt = SimilarityIndex.objects.get(project=embedded)  # one per project
    assert rebuilt.space_id == space.pk and rebuilt.dim == 16 and rebuilt.pk != old.pk
    assert not default_storage.exists(old.file)
    assert similar(client, embedded, [seed.pk]).json()["results"][0]["patch"] == seed.pk


def test_only_admins_build_and_viewers_cannot_start_jobs(client, users, imported_4):
    embedded = imported_4
    client.force_login(users["viewer"])
    patch = Patch.objects.filter(project=embedded).first()
    nothing = similar(client, embedded, [patch.pk])  # nothing embedded: no job is queued
    assert nothing.status_code == 409 and "no embeddings yet" in nothing.json()["detail"]
    assert not SimilarityJob.objects.exists()
    url = f"/api/projects/{embedded.slug}/similarity-jobs/"
    client.force_login(users["reviewer"])
    assert client.post(url, {"kind": "index"}, content_type="application/json"
                       ).status_code == 403
    client.force_login(users["viewer"])
    assert client.post(url, {"kind": "candidates", "label": 1},
                       content_type="application/json").status_code == 403
    assert client.get(url).status_code == 200


def test_past_the_exact_limit_an_ivf_index_is_built_and_searched(client, users, embedded,
                                                                  monkeypatch):
    from inference.similarity import faiss_index

    monkeypatch.setattr(faiss_index, "EXACT_LIMIT", 50)
    client.force_login(users["viewer"])
    seed = Patch.objects.filter(project=embedded).order_by("id")[9]
    assert similar(client, embedded, [seed.pk]).status_code == 409  # built meanwhile
    index = SimilarityIndex.objects.get(project=embedded)
    assert index.kind == faiss_index.KIND_IVF and index.size == Patch.objects.filter(
        project=embedded).count()
    job = SimilarityJob.objects.get(kind="index")
    assert job.summary["recall@10"] >= 0.99 and job.summary["nprobe"] >= 1  # calibrated
    assert similar(client, embedded, [seed.pk], k=5).json()["results"][0]["patch"] == seed.pk
    on_test = similar(client, embedded, [seed.pk], k=5, split="test").json()["results"]
    assert on_test and {r["split"] for r in on_test} == {"test"}


def test_calibration_probes_lists_until_recall_is_reached():
    from inference.similarity import faiss_index

    rng = np.random.default_rng(0)
    centres = rng.standard_normal((2000, 64))
    vectors = (centres[rng.integers(0, 2000, 20000)]
               + rng.standard_normal((20000, 64))).astype(np.float32)
    index = faiss_index.ivf(64, 20000, vectors[::2])
    faiss_index.add(index, np.arange(20000), vectors)
    nprobe, recall = faiss_index.calibrate(index, faiss_index.normalised(vectors[:40]))
    assert recall >= 0.99 and index.nprobe == nprobe <= index.nlist
    restored = faiss_index.from_bytes(faiss_index.to_bytes(index))
    assert restored.nprobe == nprobe  # stored with the index


def test_a_mapped_index_answers_as_the_copy(tmp_path):
    from inference.similarity import faiss_index

    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((500, 32)).astype(np.float32)
    index = faiss_index.build(32, [(np.arange(1000, 1500), vectors)])
    path = tmp_path / "x.faiss"
    path.write_bytes(faiss_index.to_bytes(index))
    mapped = faiss_index.read_mapped(str(path))
    copy = faiss_index.from_bytes(path.read_bytes())
    for a, b in zip(faiss_index.search(mapped, vectors[:5], 7),
                    faiss_index.search(copy, vectors[:5], 7), strict=True):
        assert np.array_equal(a, b)
    assert faiss_index.search(mapped, vectors[3:4], 1)[1][0][0] == 1003


def test_a_lost_index_file_is_rebuilt(client, users, embedded):
    client.force_login(users["viewer"])
    seed = Patch.objects.filter(project=embedded).order_by("id")[2]
    similar(client, embedded, [seed.pk])  # builds
    lost = SimilarityIndex.objects.get(project=embedded)
    from inference.similarity import store

    store.delete(lost.file)  # the media volume lost it
    gone = similar(client, embedded, [seed.pk])
    assert gone.status_code == 409 and "cannot be read" in gone.json()["detail"]
    assert SimilarityIndex.objects.get(project=embedded).file != lost.file  # rebuilt
    assert similar(client, embedded, [seed.pk]).json()["results"][0]["patch"] == seed.pk
