"""The active-learning loop (issue 14; issue 13 item 11): a worse head is never activated
silently, confident learning's flags and estimates, the queue's ranking against cleanlab's,
and retraining rounds triggered by settled decisions, with their history page and API.

Training runs in-process (Celery eager) through the command, the page and the review API;
heads here train with small explicit options where the defaults are not what is tested
(tests/test_training_defaults.py trains with the defaults).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from django.core.management import call_command

from annotations.models import LabelClass, Patch, PatchStatus
from inference.models import InferenceJob, LabelIssue, ModelVersion, Prediction, RetrainPolicy
from inference.queries import scored_queue

pytestmark = pytest.mark.django_db(transaction=True)  # on-commit hooks queue the steps

GOOD = ("--epochs", "40", "--batch-size", "16", "--lr", "1e-3", "--patience", "0",
        "--repeats", "1")


def train(project, name: str, *extra: str) -> ModelVersion:
    call_command("train_head", "--project", project.slug, "--backbone", "color-texture",
                 "--folds", "3", "--name", name, "--json", *extra, stdout=io.StringIO(),
                 stderr=io.StringIO())
    return ModelVersion.objects.get(project=project, name=name)


def test_a_worse_head_from_the_page_is_kept_inactive_with_the_reason(imported_4, eager, client,
                                                                      users, sample_spider_4):
    good = train(imported_4, "good")  # the defaults for the size
    assert good.is_active and good.metrics["accuracy"] >= 0.8
    _check_confident_learning(good, imported_4, client, users, sample_spider_4)

    client.force_login(users["admin"])
    response = client.post(f"/p/{imported_4.slug}/train/", {"epochs": "1", "folds": "3"})
    assert response.status_code == 302
    worse = ModelVersion.objects.exclude(pk=good.pk).get(project=imported_4)
    good.refresh_from_db()
    assert good.is_active and not worse.is_active
    activation = worse.training["activation"]
    assert activation["activated"] is False and activation["against"] == "good"
    assert activation["reason"].startswith("kept inactive: worse than good on the test split")
    test = activation["test"]
    assert test["active_only_right"] > test["new_only_right"]
    page = client.get(f"/p/{imported_4.slug}/").content.decode()
    assert "kept inactive: worse than good" in page

    # the admin can still activate it, and that is recorded on it
    client.post(f"/p/{imported_4.slug}/models/{worse.pk}/activate/")
    worse.refresh_from_db()
    assert worse.is_active and worse.training["activation"]["reason"].startswith(
        "activated by admin")


def _check_confident_learning(version, imported_4, client, users, sample_spider_4) -> None:
    """Shares the trained head of the test above (training is the slow part)."""
    learned = version.metrics["confident_learning"]
    classes = version.class_names
    assert set(learned["estimated_errors"]) == set(classes)
    noise = np.array(learned["noise_matrix"])
    assert noise.shape == (len(classes), len(classes))
    np.testing.assert_allclose(noise.sum(axis=0)[noise.sum(axis=0) > 0], 1.0, atol=1e-3)

    # cleanlab's find_label_issues on the stored out-of-fold probabilities, as the flags
    rows = list(Prediction.objects.filter(model_version=version, out_of_fold=True)
                .order_by("patch_id").values_list("patch_id", "probabilities",
                                                  "scored_label__name"))
    probs = np.array([r[1] for r in rows])
    labels = np.array([classes.index(r[2]) for r in rows])
    expected = {rows[i][0] for i in np.flatnonzero(find_label_issues(labels, probs))}
    flagged = set(LabelIssue.objects.filter(model_version=version)
                  .values_list("patch_id", flat=True))
    assert flagged == expected and learned["issues"] == len(flagged) > 0
    planted = {p["image_name"] for p in json.loads(
        (sample_spider_4 / "planted_errors.json").read_text())}
    names = set(Patch.objects.filter(pk__in=flagged).values_list("image_name", flat=True))
    assert len(names & planted) >= len(names) / 2, "most flags are planted flips"

    client.force_login(users["viewer"])
    issues = client.get(f"/api/projects/{imported_4.slug}/label-issues/").json()
    assert {i["patch"] for i in issues} == flagged
    assert all(i["given_label"] != i["likely_label"] for i in issues)
    one = issues[0]
    assert client.get(f"/api/projects/{imported_4.slug}/label-issues/?patch={one['patch']}"
                      ).json() == [one]
    patch_page = client.get(f"/p/{imported_4.slug}/patches/{one['patch']}/").content.decode()
    assert f"flags this label as likely wrong: likely {one['likely_label']}" in patch_page
    unflagged = Patch.objects.filter(project=imported_4).exclude(pk__in=flagged).first()
    assert 'id="label-issue"' not in client.get(
        f"/p/{imported_4.slug}/patches/{unflagged.pk}/").content.decode()
    page = client.get(f"/p/{imported_4.slug}/").content.decode()
    assert 'id="plot-label_errors"' in page and 'id="plot-noise_matrix"' in page
    assert f"flags <strong>{len(flagged)}</strong>" in page
    svg = client.get(f"/p/{imported_4.slug}/plots/noise_matrix.svg")
    assert svg.status_code == 200 and b"<svg" in svg.content


def test_the_disagreement_queue_is_cleanlabs_self_confidence_ranking(imported_4, eager,
                                                                     client, users):
    version = train(imported_4, "good", "--epochs", "10", "--patience", "0", "--repeats", "1")
    client.force_login(users["reviewer"])  # no double reads yet: no ActiveLab queue
    refused = client.post(f"/api/projects/{imported_4.slug}/queues/more_reads/next/", {},
                          content_type="application/json")
    assert refused.status_code == 400 and "two reviewers" in refused.json()["detail"]
    page = client.get(f"/p/{imported_4.slug}/review/?queue=more_reads").content.decode()
    assert 'data-queue="more_reads"' not in page and 'data-queue="disagreement"' in page
    project_page = client.get(f"/p/{imported_4.slug}/").content.decode()
    assert "needs two reads of the same patches, then a model" in project_page
    classes = version.class_names
    rows = list(Prediction.objects.filter(model_version=version, scored_label__isnull=False)
                .order_by("patch_id").values_list("patch_id", "probabilities",
                                                  "scored_label__name", "label_quality"))
    ids = np.array([r[0] for r in rows])
    probs = np.array([r[1] for r in rows])
    labels = np.array([classes.index(r[2]) for r in rows])
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    np.testing.assert_allclose([r[3] for r in rows], quality, atol=1e-6)

    disagree = probs.argmax(1) != labels
    expected = ids[disagree][np.lexsort((ids[disagree], quality[disagree]))]
    queue = list(scored_queue(Patch.objects.filter(project=imported_4), version,
                              "disagreement").values_list("id", flat=True))
    assert queue == expected.tolist() and len(queue) > 3
    # and cleanlab's own ranking of the issues it finds is the queue's order among them
    ranked = find_label_issues(labels, probs, return_indices_ranked_by="self_confidence")
    in_queue = [int(ids[i]) for i in ranked if disagree[i]]
    assert in_queue == [p for p in queue if p in set(in_queue)]


def _decide(client, slug: str, count: int) -> None:
    base = f"/api/projects/{slug}"
    items = client.post(f"{base}/queues/disagreement/next/", {"count": count},
                        content_type="application/json").json()["items"]
    assert len(items) == count
    for item in items:
        top = item["model"]["top"][0]["name"]
        label = LabelClass.objects.get(project__slug=slug, name=top)
        response = client.post(f"{base}/patches/{item['patch']}/reviews/",
                               {"action": "correct", "label": label.pk,
                                "patch_version": item["version"], "time_spent_ms": 3000,
                                "model_version": item["model"]["version"]},
                               content_type="application/json")
        assert response.status_code == 201, response.content


def test_a_round_runs_after_every_n_settled_decisions_once(imported_4, eager, client, users):
    first = train(imported_4, "first", *GOOD)
    admin, reviewer = client, type(client)()
    admin.force_login(users["admin"])
    reviewer.force_login(users["reviewer"])
    assert admin.post(f"/p/{imported_4.slug}/rounds/policy/",
                      {"every_settled": "3"}).status_code == 302
    assert RetrainPolicy.objects.get(project=imported_4).every_settled == 3

    _decide(reviewer, imported_4.slug, 2)
    assert not InferenceJob.objects.filter(kind=InferenceJob.Kind.ROUND).exists()
    _decide(reviewer, imported_4.slug, 1)  # the third settled decision queues (and runs) it
    job = InferenceJob.objects.get(kind=InferenceJob.Kind.ROUND)
    assert job.status == InferenceJob.Status.SUCCEEDED, job.error
    version = job.model_version
    assert version is not None and version.training["round"]["trigger"] == "every 3 settled"
    assert version.training["round"]["settled"] == 3
    assert version.training["choices"]["batch_size"].endswith("(SPIDER's 256 from 10240)")
    _decide(reviewer, imported_4.slug, 1)  # one more: not yet due again
    assert InferenceJob.objects.filter(kind=InferenceJob.Kind.ROUND).count() == 1

    history = admin.get(f"/api/projects/{imported_4.slug}/rounds/").json()
    assert [r["version"] for r in history] == ["first", version.name]
    assert history[0]["trigger"] == "train_head" and history[1]["trigger"] == "every 3 settled"
    assert history[0]["labels_used"] > 0 and history[1]["settled"] == 3
    assert history[0]["queue_shown"] == 3 and history[0]["queue_corrected"] == 3
    assert history[0]["queue_precision"] == 1.0
    assert history[0]["decisions_per_hour"] == pytest.approx(1200, rel=0.01)  # 3 s each
    assert history[1]["remaining_total"] is not None
    page = admin.get(f"/p/{imported_4.slug}/rounds/").content.decode()
    assert version.name in page and 'id="plot-round_metrics"' in page
    # Each plot says what it shows above it, and each class keeps its own colour there
    # (a palette of their own, and version names cut at the start: a browser walk).
    assert '<p class="plot-title">Test metrics per model version' in page
    remaining = page[page.index('id="plot-round_remaining"'):]
    remaining = remaining[:remaining.index("</figure>")]
    for label in imported_4.classes.all():
        if f">{label.name}</text>" in remaining:
            assert f'fill="{label.colour}"' in remaining, label.name
    assert f">{version.name[:18]}" in remaining or f">{version.name}<" in remaining
    assert "every 3 settled" in page and "Run a round now" in page
    # the round's head (defaults) is not worse than the first: activated, the guard said so
    assert version.is_active and version.training["activation"]["reason"].startswith(
        "not worse than first")
    assert not ModelVersion.objects.get(pk=first.pk).is_active


def test_the_round_button_and_roles(imported_4, client, users):
    """Without eager Celery the queued round stays pending (no worker): a second one, or a
    train job, is refused while it is live."""
    client.force_login(users["reviewer"])
    assert client.post(f"/api/projects/{imported_4.slug}/rounds/").status_code == 403
    assert client.put(f"/api/projects/{imported_4.slug}/retrain-policy/", {"every_settled": 5},
                      content_type="application/json").status_code == 403
    client.force_login(users["admin"])
    refused = client.post(f"/api/projects/{imported_4.slug}/rounds/")
    assert refused.status_code == 400 and "no active model" in refused.json()["detail"]
    put = client.put(f"/api/projects/{imported_4.slug}/retrain-policy/", {"every_settled": 5},
                     content_type="application/json")
    assert put.status_code == 200 and put.json()["every_settled"] == 5
    assert client.get(f"/api/projects/{imported_4.slug}/retrain-policy/").json()[
        "settled"] == Patch.objects.filter(project=imported_4, status__in=(
            PatchStatus.CONFIRMED, PatchStatus.CORRECTED)).count()

    from inference.modeling.train import build_head
    from inference.registry import create_version, get_space, project_class_names

    classes = project_class_names(imported_4)
    space = get_space("color-texture")
    create_version(imported_4, name="v1", space=space, head=build_head("context",
                   space.embed_dim, len(classes)), class_names=classes,
                   source=ModelVersion.Source.TRAINED)
    queued = client.post(f"/api/projects/{imported_4.slug}/rounds/")
    assert queued.status_code == 201 and queued.json()["kind"] == "round"
    again = client.post(f"/api/projects/{imported_4.slug}/rounds/")
    assert again.status_code == 400 and "round job" in again.json()["detail"]
    train = client.post(f"/api/projects/{imported_4.slug}/inference-jobs/", {"kind": "train"},
                        content_type="application/json")
    assert train.status_code == 400 and "already pending" in train.json()["detail"]
    page = client.post(f"/p/{imported_4.slug}/rounds/start/", {"next": "rounds"}, follow=True)
    assert "is already pending" in page.content.decode()


def test_two_reads_give_reviewer_quality_and_a_queue_of_the_next_reads(imported_4, eager,
                                                                       client, users):
    """Two reviewers read the same patches (one of them careless), the second only the first
    16 of 24: the trained version's CROWDLAB figures rank the careful one higher (reviewers
    page, API), and the more_reads queue leases the waiting patches in ActiveLab's order,
    recomputed here from the reads given and the stored probabilities, never to a reviewer
    who has read the patch already."""
    from cleanlab.multiannotator import get_active_learning_scores

    imported_4.reviews_required = 2
    imported_4.save(update_fields=["reviews_required"])
    base = f"/api/projects/{imported_4.slug}"
    patches = list(Patch.objects.filter(project=imported_4).order_by("id")[:24])
    classes = list(LabelClass.objects.filter(project=imported_4).order_by("index"))
    given: dict[int, list[float]] = {p.pk: [np.nan, np.nan] for p in patches}
    for column, (name, count) in enumerate((("reviewer", 24), ("admin", 16))):
        client.force_login(users[name])
        for i, patch in enumerate(patches[:count]):
            patch.refresh_from_db()
            # the reviewer's lone read of patch 20 corrects it: an open double read
            careless = (name == "admin" and i % 2 == 0) or (name == "reviewer" and i == 20)
            label = (classes[(classes.index(patch.original_label) + 1) % len(classes)]
                     if careless else patch.original_label)
            response = client.post(f"{base}/patches/{patch.pk}/reviews/",
                                   {"action": "correct" if careless else "confirm",
                                    "label": label.pk, "patch_version": patch.version},
                                   content_type="application/json")
            assert response.status_code == 201, response.content
            given[patch.pk][column] = classes.index(label)
    version = train(imported_4, "crowd", *GOOD)
    assert version.is_active
    crowd = client.get(f"{base}/crowd/").json()
    assert set(crowd["reviewers"]) == {"reviewer", "admin"} and crowd["patches"] == 24
    quality = {name: r["quality"] for name, r in crowd["reviewers"].items()}
    assert quality["reviewer"] > quality["admin"], quality
    # Any member may read this: a patch whose double read is still open (blind) is never
    # listed with CROWDLAB's label, which would be its one reader's.
    client.force_login(users["viewer"])
    listed = {d["patch"] for d in client.get(f"{base}/crowd/").json()["consensus_differs"]}
    assert patches[20].pk not in listed
    assert all(Patch.objects.get(pk=p).status != "unreviewed" for p in listed)
    page = client.get(f"/p/{imported_4.slug}/reviewers/").content.decode()
    assert 'id="crowd-rows"' in page and "One more read would help most" in page
    assert "?queue=more_reads" in page

    probs = {pid: np.array(p) for pid, p in Prediction.objects.filter(
        model_version=version).values_list("patch_id", "probabilities")}
    read = sorted(given)
    unread = sorted(set(probs) - set(read))
    scores, unread_scores = get_active_learning_scores(
        np.array([given[p] for p in read]), np.array([probs[p] for p in read]),
        np.array([probs[p] for p in unread]))
    score = {**dict(zip(read, scores, strict=True)),
             **dict(zip(unread, unread_scores, strict=True))}
    waiting = set(Patch.objects.filter(project=imported_4, status=PatchStatus.UNREVIEWED)
                  .values_list("id", flat=True))
    assert {p.pk for p in patches[16:]} <= waiting  # one read of two: still waiting

    def leased(name: str, count: int) -> list[int]:
        client.force_login(users[name])
        response = client.post(f"{base}/queues/more_reads/next/", {"count": count},
                               content_type="application/json")
        assert response.status_code == 200, response.content
        return [item["patch"] for item in response.json()["items"]]

    first = leased("admin", 12)
    expected = sorted(waiting, key=lambda p: (score[p], p))[:12]
    assert len(first) == 12
    # the same patches in the same order, up to ties within the stored probabilities' rounding
    assert [score[p] for p in first] == pytest.approx([score[p] for p in expected], abs=1e-4)
    mine = leased("reviewer", 30)
    assert not set(mine) & {p.pk for p in patches}, "never a second read by the same reader"
    assert len(mine) == len(set(mine)) > 12  # the patches' second slots are open to them
    review_page = client.get(f"/p/{imported_4.slug}/review/?queue=more_reads").content.decode()
    assert 'data-queue="more_reads"' in review_page
