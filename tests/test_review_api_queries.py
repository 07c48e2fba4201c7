"""The review API's hot path, as a script drives it over HTTP with a token: next and submit
run a pinned number of queries, and the queue's statement, compiled once per shape, still
follows the project's settings and hands each patch to one reviewer."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token

from annotations import prepared
from annotations.actions import set_membership
from annotations.models import LabelClass, Lease, Patch, Role, Slide, Tile
from annotations.reviewing import ReviewSettings, update_settings

# Per call, through the test client (so 2 more for the transaction's savepoint and its
# release): next = token, membership, held leases, active version, the queue's locking
# SELECT, lease count on the patch, lease insert, the patches, the model's opinions,
# class prototypes. A first decision = token, membership, patch lock, review insert, lease
# delete, patch update, queue scores, retraining policy; later ones also read the history.
NEXT_QUERIES = 10 + 2
FIRST_DECISION_QUERIES = 8 + 2
LATER_DECISION_QUERIES = 9 + 2


@pytest.fixture
def modelled(project):
    """12 patches on one slide (rows only: nothing here reads an image) and an active model
    version that disagrees with the label on every other patch, its predictions and queue
    scores written as the prediction step writes them."""
    from inference.models import EmbeddingSpace, ModelVersion, Prediction
    from inference.queue_scores import activate_version, store

    classes = [LabelClass.objects.create(project=project, name=name, index=i, hotkey=str(i + 1))
               for i, name in enumerate(["Fat", "Stroma", "Vessel"])]
    slide = Slide.objects.create(project=project, name="slide-1")
    tiles = Tile.objects.bulk_create([Tile(project=project, sha256=f"{i:064x}", file=f"t/{i}.png",
                                           name=f"{i}.png") for i in range(25)])
    patches = Patch.objects.bulk_create([Patch(
        project=project, slide=slide, split="train", image_name=f"p{k}.png",
        centre_tile=tiles[12], grid=[t.pk for t in tiles], original_label=classes[k % 3],
        current_label=classes[k % 3]) for k in range(12)])
    space = EmbeddingSpace.objects.create(backbone="color-texture", embed_dim=8)
    version = ModelVersion.objects.create(
        project=project, name="head", space=space, head_file="h", head_sha256="0" * 64,
        class_names=[c.name for c in classes], source=ModelVersion.Source.REGISTERED)
    predictions = []
    for k, patch in enumerate(patches):
        said = (k + 1) % 3 if k % 2 == 0 else k % 3
        probs = [0.1, 0.1, 0.1]
        probs[said] = 0.8
        predictions.append(Prediction(
            model_version=version, patch=patch, probabilities=probs, predicted=classes[said],
            confidence=0.8, margin=0.7, entropy=0.6, scored_label=classes[k % 3],
            label_quality=probs[k % 3] - k / 100, disagree=said != k % 3))
    Prediction.objects.bulk_create(predictions)
    store(version, [p.pk for p in patches], [p.label_quality for p in predictions],
          [p.disagree for p in predictions], [0.6] * len(patches))
    activate_version(version)
    return project


def token_client(client_class, user):
    client = client_class()
    token, _ = Token.objects.get_or_create(user=user)
    client.defaults["HTTP_AUTHORIZATION"] = f"Token {token.key}"
    return client


def post(client, url, data):
    return client.post(url, data, content_type="application/json")


@pytest.mark.parametrize("queue", ["disagreement", "unreviewed"])
def test_next_and_submit_keep_their_query_counts(client, users, modelled, queue,
                                                 django_assert_max_num_queries):
    api = token_client(type(client), users["reviewer"])
    base = f"/api/projects/{modelled.slug}"
    for _ in range(3):  # the first call compiles the queue's statement, the others reuse it
        with django_assert_max_num_queries(NEXT_QUERIES):
            response = post(api, f"{base}/queues/{queue}/next/", {"count": 1})
        item = response.json()["items"][0]
        assert len(item["grid"]) == 25 and item["version"] == 1
        assert len(item["model"]["top"]) == 3
        assert item["model"]["disagree"] or queue == "unreviewed"
        with django_assert_max_num_queries(FIRST_DECISION_QUERIES):
            response = post(api, f"{base}/patches/{item['patch']}/reviews/",
                            {"action": "confirm", "patch_version": 1})
        assert response.status_code == 201, response.content
        assert response.json()["patch"] == {
            "id": item["patch"], "version": 2, "status": "confirmed",
            "current_label": item["current_label"], "decisions": 1}
        patch = Patch.objects.get(pk=item["patch"])
        assert (patch.leases_held, Lease.objects.filter(patch=patch).count()) == (0, 0)

    with django_assert_max_num_queries(LATER_DECISION_QUERIES):  # a patch with a history
        response = post(api, f"{base}/patches/{item['patch']}/reviews/",
                        {"action": "unsure", "patch_version": 2})
    assert response.status_code == 201 and response.json()["patch"]["status"] == "unsure"


def test_one_compiled_queue_serves_every_reviewer_one_patch_each(client, users, modelled,
                                                                 monkeypatch):
    from annotations import queues

    built = []  # the queue's locking statement is built (then compiled) by _eligible only
    real = queues._eligible
    monkeypatch.setattr(queues, "_eligible", lambda *a, **k: built.append(a) or real(*a, **k))
    set_membership(modelled, users["viewer"], Role.REVIEWER)
    base = f"/api/projects/{modelled.slug}/queues/disagreement/next/"
    handed = []
    for name in ("reviewer", "viewer", "admin", "reviewer", "viewer"):
        api = token_client(type(client), users[name])
        handed += [i["patch"] for i in post(api, base, {"count": 2}).json()["items"]]
    # 3 reviewers x 2 patches; each holds theirs on the repeated call; all different
    assert len(handed) == 10 and len(set(handed)) == 6
    assert len(built) <= 1  # compiled once (0: an earlier test of this process did)
    expected = list(queues.queue_queryset(modelled, "disagreement").values_list("id", flat=True))
    assert sorted(set(handed), key=expected.index) == expected[:6]  # in queue order


def test_a_changed_number_of_reads_reaches_the_compiled_queue(client, users, modelled):
    """The statement for one read keeps a patch decided once out of the queue; after the
    admin asks for two reads, the next reviewer gets that patch for its second read."""
    base = f"/api/projects/{modelled.slug}"
    reviewer = token_client(type(client), users["reviewer"])
    admin = token_client(type(client), users["admin"])
    first = post(reviewer, f"{base}/queues/unreviewed/next/", {"count": 1}).json()["items"][0]
    update_settings(modelled, users["admin"], ReviewSettings(2, modelled.audit_fraction,
                                                             modelled.lease_seconds))
    decided = post(reviewer, f"{base}/patches/{first['patch']}/reviews/",
                   {"action": "confirm", "patch_version": first["version"]}).json()["patch"]
    assert (decided["status"], decided["decisions"]) == ("unreviewed", 1)  # one read of two
    second = post(admin, f"{base}/queues/unreviewed/next/", {"count": 1}).json()["items"][0]
    assert second["patch"] == first["patch"]


def test_a_statement_whose_markers_are_not_parameters_is_not_kept(db):
    from annotations.models import Review

    kept = prepared.compile_once(("test", "no markers"),
                                 lambda user, now: Review.objects.values_list("id"))
    assert kept is None
    used = prepared.compile_once(("test", "markers"), lambda user, now: Lease.objects.filter(
        reviewer_id=user, expires_at__gt=now).values_list("patch_id"))
    assert used is not None and sorted(name for _, name in used.slots) == ["now", "user"]
    assert used.rows(user=0, now=prepared.MARKERS["now"]) == []


def test_first_instances_equal_the_orm_compiled_or_not(imported):
    """Rows read by a kept statement, and by the fallback for a queryset whose values cannot
    be markers, become the instances the ORM builds (JSON parsed once, related row attached)."""
    patch = Patch.objects.select_related("slide").order_by("id").first()

    def build(patch: int):
        return (Patch.objects.filter(pk=patch)
                .values_list(*prepared.columns(Patch), *prepared.columns(Slide, "slide__")))

    def inlined(patch: int):  # the id is ignored, so no marker reaches the SQL: not kept
        return build(patch=patch_id)

    patch_id = patch.pk
    for key, make in (("test: compiled", build), ("test: fallback", inlined)):
        found = prepared.first_instances(key, make, (Patch, Slide), patch=patch.pk)
        assert found is not None
        read, slide = found
        assert [getattr(read, f.attname) for f in Patch._meta.concrete_fields] == \
            [getattr(patch, f.attname) for f in Patch._meta.concrete_fields]
        assert isinstance(read.grid, list) and read.grid == patch.grid
        assert slide == patch.slide and slide.name == patch.slide.name
    assert prepared.compile_once("test: fallback", inlined, uses=("patch",)) is None
    assert prepared.first_instances("test: compiled", build, (Patch, Slide), patch=-1) is None
