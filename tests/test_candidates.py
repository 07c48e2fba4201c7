"""The candidates queue through the API: unlabelled patches proposed as a class from seeds,
yes labels through a review row naming the seeds, no is never proposed again."""

from __future__ import annotations

import pytest

from annotations.models import Patch, PatchStatus, Review
from inference.similarity.actions import start_index
from inference.similarity.models import Candidate, SimilarityJob

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit hooks queue the jobs
pytest_plugins = ["tests.similarity_fixtures"]


@pytest.fixture
def grown(embedded):
    """The embedded project with its first slide unlabelled (as a whole-slide import leaves
    it) and the similarity index built."""
    from tests.similarity_fixtures import unlabel

    unlabel(embedded, 0)
    start_index(embedded, check=False)
    return embedded


def seeds_of(project, label, n=3):
    return list(Patch.objects.filter(project=project, current_label=label)
                .order_by("id").values_list("id", flat=True)[:n])


def propose(client, project, label, seeds=None, k=8):
    body = {"kind": "candidates", "label": label.pk, "k": k}
    if seeds is not None:
        body["seeds"] = seeds
    return client.post(f"/api/projects/{project.slug}/similarity-jobs/", body,
                       content_type="application/json")


def lease(client, project, label, count=20):
    response = client.post(f"/api/projects/{project.slug}/queues/candidates/next/",
                           {"count": count, "proposed_label": label.pk},
                           content_type="application/json")
    assert response.status_code == 200, response.content
    return response.json()["items"]


def answer(client, project, item, kind, label=None):
    body = {"proposed": item["candidate"]["label"], "answer": kind,
            "patch_version": item["version"]}
    if label is not None:
        body["label"] = label
    return client.post(f"/api/projects/{project.slug}/candidates/{item['patch']}/answer/",
                       body, content_type="application/json")


def test_yes_labels_through_a_review_row_and_no_is_never_proposed_again(client, users, grown):
    client.force_login(users["reviewer"])
    label = grown.classes.order_by("index").first()
    seeds = seeds_of(grown, label)
    assert propose(client, grown, label, seeds).status_code == 201
    job = SimilarityJob.objects.get(kind="candidates")
    assert job.status == "succeeded" and job.summary["proposed"] == 8
    unlabelled = set(Patch.objects.filter(project=grown, current_label__isnull=True)
                     .values_list("id", flat=True))
    proposed = set(Candidate.objects.filter(label=label).values_list("patch_id", flat=True))
    assert len(proposed) == 8 and proposed <= unlabelled  # only unlabelled patches
    assert client.get(f"/api/projects/{grown.slug}/queues/").json()["sizes"]["candidates"] == 8

    items = lease(client, grown, label)
    assert [i["patch"] for i in items] == list(
        Candidate.objects.filter(label=label).order_by("-similarity", "patch_id")
        .values_list("patch_id", flat=True))
    yes, no, other = items[0], items[1], items[2]
    assert yes["candidate"]["name"] == label.name and set(yes["candidate"]["seeds"]) <= set(seeds)
    assert yes["current_label"] is None

    assert answer(client, grown, yes, "yes").status_code == 201
    patch = Patch.objects.get(pk=yes["patch"])
    assert patch.current_label == label and patch.status == PatchStatus.CORRECTED
    review = Review.objects.get(patch=patch)
    assert review.action == "correct" and review.from_label is None and review.to_label == label
    assert review.shown_probabilities["candidate"]["seeds"][0] in seeds
    assert "seed patches" in review.comment and str(review.shown_probabilities[
        "candidate"]["seeds"][0]) in review.comment
    assert Candidate.objects.get(patch=patch, label=label).review == review
    # Another reviewer's "no", from a page loaded before that "yes", is stale: it used to
    # turn the accepted candidate (and its review) into a rejected one.
    client.force_login(users["admin"])
    late = answer(client, grown, yes, "no")
    assert late.status_code == 409 and "changed since you loaded it" in late.json()["detail"]
    assert Candidate.objects.get(patch=patch, label=label).state == "accepted"
    client.force_login(users["reviewer"])

    assert answer(client, grown, no, "no").status_code == 201
    rejected = Candidate.objects.get(patch_id=no["patch"], label=label)
    assert rejected.state == "rejected" and rejected.answered_by == users["reviewer"]
    assert Patch.objects.get(pk=no["patch"]).current_label is None  # still unlabelled
    assert not Review.objects.filter(patch_id=no["patch"]).exists()

    second = grown.classes.order_by("index")[1]
    assert answer(client, grown, other, "other", second.pk).status_code == 201
    assert Patch.objects.get(pk=other["patch"]).current_label == second
    assert Candidate.objects.get(patch_id=other["patch"], label=label).state == "relabelled"
    assert client.get(f"/api/projects/{grown.slug}/queues/").json()["sizes"]["candidates"] == 5

    # A new round from the same seeds fills the queue again, never with the rejected one.
    assert propose(client, grown, label, seeds, k=30).status_code == 201
    queue = [i["patch"] for i in lease(client, grown, label, count=100)]
    assert no["patch"] not in queue and yes["patch"] not in queue and other["patch"] not in queue
    assert Candidate.objects.get(patch_id=no["patch"], label=label).state == "rejected"
    # ... but it may still be proposed as another class.
    assert propose(client, grown, second, seeds_of(grown, second), k=200).status_code == 201
    assert Candidate.objects.filter(patch_id=no["patch"], label=second).exists()


def test_default_seeds_are_the_settled_patches_of_the_class(client, users, grown):
    client.force_login(users["reviewer"])
    label = grown.classes.order_by("index").first()
    refused = propose(client, grown, label)
    assert refused.status_code == 400 and "no settled patches" in refused.json()["detail"]
    for pid in seeds_of(grown, label, 2):
        patch = Patch.objects.get(pk=pid)
        assert client.post(f"/api/projects/{grown.slug}/patches/{pid}/reviews/",
                           {"action": "confirm", "patch_version": patch.version},
                           content_type="application/json").status_code == 201
    assert propose(client, grown, label).status_code == 201
    job = SimilarityJob.objects.filter(kind="candidates").first()
    assert job.status == "succeeded" and job.summary["seeds"] == 2


def test_unlabelled_patch_cannot_be_confirmed_and_answers_are_checked(client, users, grown):
    client.force_login(users["reviewer"])
    patch = Patch.objects.filter(project=grown, current_label__isnull=True).first()
    refused = client.post(f"/api/projects/{grown.slug}/patches/{patch.pk}/reviews/",
                          {"action": "confirm", "patch_version": patch.version},
                          content_type="application/json")
    assert refused.status_code == 400 and "no label to confirm" in refused.json()["detail"]
    label = grown.classes.first()
    not_candidate = client.post(
        f"/api/projects/{grown.slug}/candidates/{patch.pk}/answer/",
        {"proposed": label.pk, "answer": "yes", "patch_version": patch.version},
        content_type="application/json")
    assert not_candidate.status_code == 400 and "not a candidate" in not_candidate.json()["detail"]
    client.force_login(users["viewer"])
    assert client.post(f"/api/projects/{grown.slug}/candidates/{patch.pk}/answer/", {},
                       content_type="application/json").status_code == 403


def test_grid_mode_sends_candidates_to_the_one_at_a_time_page(client, users, imported):
    client.force_login(users["reviewer"])
    response = client.get(f"/p/{imported.slug}/review/grid/?queue=candidates&proposed_label=3")
    assert response.status_code == 302
    assert response["Location"] == (f"/p/{imported.slug}/review/?queue=candidates"
                                    "&proposed_label=3")
