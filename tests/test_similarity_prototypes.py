"""Class prototypes: computed by a job, a nearest-prototype second opinion on the review
page's items, typical/atypical patches per class, and the few-shot figures on the project
page."""

from __future__ import annotations

import numpy as np
import pytest

from inference.similarity.fewshot import few_shot, recall_at_k
from inference.similarity.models import ClassPrototypes, SimilarityJob

pytestmark = pytest.mark.django_db(transaction=True)
pytest_plugins = ["tests.similarity_fixtures"]


def test_prototypes_job_second_opinion_ordering_and_project_page(client, users, embedded):
    client.force_login(users["admin"])
    response = client.post(f"/api/projects/{embedded.slug}/similarity-jobs/",
                           {"kind": "prototypes"}, content_type="application/json")
    assert response.status_code == 201
    job = SimilarityJob.objects.get(kind="prototypes")
    assert job.status == "succeeded", job.error
    row = ClassPrototypes.objects.get(project=embedded)
    assert set(row.class_ids) == set(embedded.classes.values_list("id", flat=True))
    figures = row.fewshot
    for shots in ("1-shot", "5-shot", "10-shot"):
        for metric in ("accuracy", "balanced_accuracy", "weighted_f1"):
            assert 0 <= figures[shots][metric]["mean"] <= 1
    assert figures["10-shot"]["accuracy"]["mean"] > 1 / len(row.class_ids)  # beats chance
    assert set(figures["retrieval"]) == {"recall@1", "recall@5", "recall@10"}
    r = figures["retrieval"]
    assert r["recall@1"] <= r["recall@5"] <= r["recall@10"]
    for lists in figures["ordering"].values():
        assert lists["typical"][0][1] >= lists["atypical"][0][1]

    items = client.post(f"/api/projects/{embedded.slug}/queues/unreviewed/next/",
                        {"count": 3}, content_type="application/json").json()["items"]
    names = set(embedded.classes.values_list("name", flat=True))
    for item in items:
        assert item["prototype"]["name"] in names and -1 <= item["prototype"]["similarity"] <= 1

    label = embedded.classes.order_by("index").first()
    url = f"/api/projects/{embedded.slug}/similar/"
    assert client.post(f"/api/projects/{embedded.slug}/similarity-jobs/", {"kind": "index"},
                       content_type="application/json").status_code == 201
    typical = client.get(url, {"prototype": label.pk, "k": 500}).json()["results"]
    atypical = client.get(url, {"prototype": label.pk, "k": 500, "order": "atypical"}
                          ).json()["results"]
    assert typical and {r["current_label"] for r in typical} == {label.name}
    scores = [r["similarity"] for r in typical]
    assert scores == sorted(scores, reverse=True)
    assert [r["similarity"] for r in atypical] == sorted(r["similarity"] for r in atypical)
    assert sorted(r["patch"] for r in typical) == sorted(r["patch"] for r in atypical)
    ordering = figures["ordering"][str(label.pk)]
    assert typical[0]["similarity"] == pytest.approx(ordering["typical"][0][1], abs=2e-3)
    assert atypical[0]["similarity"] == pytest.approx(ordering["atypical"][0][1], abs=2e-3)
    assert client.get(url, {"prototype": label.pk, "seeds": "1"}).status_code == 400

    page = client.get(f"/p/{embedded.slug}/").content.decode()
    assert 'id="fewshot"' in page and "10-shot" in page and "Recall@10" in page
    assert 'id="prototype-ordering"' in page


def test_few_shot_and_recall_on_separable_classes():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32)) * 4
    labels = rng.integers(0, 4, 400)
    vectors = centres[labels] + rng.normal(size=(400, 32))
    figures = few_shot(vectors[:300], labels[:300], vectors[300:], labels[300:], episodes=5)
    assert figures["1-shot"]["accuracy"]["mean"] > 0.8
    assert figures["10-shot"]["weighted_f1"]["mean"] > 0.95
    recall = recall_at_k(vectors[:300], labels[:300], vectors[300:], labels[300:])
    assert recall["recall@10"] >= recall["recall@1"] > 0.9
    noise = few_shot(rng.normal(size=(300, 32)), labels[:300], rng.normal(size=(100, 32)),
                     labels[300:], episodes=5)
    assert noise["10-shot"]["accuracy"]["mean"] < 0.5  # chance is 0.25
