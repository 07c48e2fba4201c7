"""Bad input to the review API gets a 4xx with a message, never a 500 (issue 13, item 1:
the cases schemathesis found)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from annotations.actions import set_membership
from annotations.models import Lease, Patch, Role

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer(client, users, imported):
    client.force_login(users["reviewer"])
    return client


def post(client, url: str, raw: str):
    return client.post(url, raw, content_type="application/json")


@pytest.mark.parametrize("raw", ["[]", "[null]", '"x"', "null", "3"])
def test_non_object_bodies_are_refused_with_a_message(reviewer, imported, raw):
    patch = Patch.objects.filter(project=imported).first()
    api = f"/api/projects/{imported.slug}"
    for url in (f"{api}/reviews/batch/", f"{api}/patches/{patch.pk}/lease/",
                f"{api}/queues/unreviewed/next/", f"{api}/patches/{patch.pk}/reviews/"):
        response = post(reviewer, url, raw)
        assert response.status_code == 400, (url, raw, response.status_code)
        assert response.json(), (url, raw)


def test_lease_takes_only_known_queues_and_404s_a_missing_patch(reviewer, imported):
    patch = Patch.objects.filter(project=imported).first()
    url = f"/api/projects/{imported.slug}/patches/{patch.pk}/lease/"
    for queue in ("no-such-queue", "unreviewed\x00", ""):
        response = post(reviewer, url, json.dumps({"queue": queue}))
        assert response.status_code == 400, (queue, response.status_code)
        assert "queue" in response.json()
    assert not Lease.objects.exists()  # nothing leased by a refused request
    missing = post(reviewer, f"/api/projects/{imported.slug}/patches/999999/lease/", "{}")
    assert missing.status_code == 404 and "No patch 999999" in missing.json()["detail"]
    assert post(reviewer, url, json.dumps({"queue": "audit"})).status_code == 200


def test_a_held_patch_is_not_leased_to_a_second_reviewer(client, users, imported):
    """Issue 13 item 4: with one read required, 'lease' by another reviewer while the first
    holds the patch from 'next' gave both a live lease."""
    api = f"/api/projects/{imported.slug}"
    client.force_login(users["reviewer"])
    item = post(client, f"{api}/queues/unreviewed/next/", '{"count": 1}').json()["items"][0]
    client.force_login(users["admin"])
    second = post(client, f"{api}/patches/{item['patch']}/lease/", '{"queue": "unreviewed"}')
    assert second.status_code == 409 and "leased to another reviewer until" in \
        second.json()["detail"]
    assert Lease.objects.filter(patch_id=item["patch"]).count() == 1
    client.force_login(users["reviewer"])  # the holder renews their own lease
    again = post(client, f"{api}/patches/{item['patch']}/lease/", '{"queue": "unreviewed"}')
    assert again.status_code == 200
    assert Lease.objects.filter(patch_id=item["patch"]).count() == 1


def expire_leases(patch_id: int) -> None:
    """What the clock does to the patch's leases once its lease time has passed."""
    past = timezone.now() - timedelta(seconds=1)
    Lease.objects.filter(patch_id=patch_id).update(expires_at=past)
    Patch.objects.filter(pk=patch_id).update(lease_expires=past)


@pytest.mark.parametrize("first_reader_then", ["decides", "skips"])
def test_a_late_decision_on_an_expired_lease_does_not_free_the_next_holders_read(
        client, users, imported, first_reader_then):
    """Two reads required. A's lease expired, B leased the patch, then A decided (or
    skipped) on the expired lease: that took B's lease off the row's count, and 'next'
    handed the last read, which B held, to a third reviewer too."""
    imported.reviews_required = 2
    imported.save()
    api = f"/api/projects/{imported.slug}"
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    third = get_user_model().objects.create_user("third", password="pw")
    set_membership(imported, third, Role.REVIEWER)
    second = get_user_model().objects.create_user("second", password="pw")
    set_membership(imported, second, Role.REVIEWER)
    lease = json.dumps({"queue": "unreviewed"})

    client.force_login(users["reviewer"])
    assert post(client, f"{api}/patches/{patch.pk}/lease/", lease).status_code == 200
    expire_leases(patch.pk)
    client.force_login(second)
    assert post(client, f"{api}/patches/{patch.pk}/lease/", lease).status_code == 200
    client.force_login(users["reviewer"])
    if first_reader_then == "decides":
        late = post(client, f"{api}/patches/{patch.pk}/reviews/",
                    json.dumps({"action": "confirm", "patch_version": patch.version}))
        assert late.status_code == 201
        holders = ["second"]  # A's decision is one read, B holds the other
    else:
        assert post(client, f"{api}/patches/{patch.pk}/skip/", "{}").status_code == 204
        client.force_login(third)  # B holds one read; the other is free, for one reviewer
        assert post(client, f"{api}/patches/{patch.pk}/lease/", lease).status_code == 200
        holders = ["second", "third"]

    client.force_login(users["admin"])  # a reviewer too: no read is left for them
    assert post(client, f"{api}/patches/{patch.pk}/lease/", lease).status_code == 409
    given = post(client, f"{api}/queues/unreviewed/next/", '{"count": 200}').json()["items"]
    assert patch.pk not in [item["patch"] for item in given], "one read, two holders"
    live = Lease.objects.filter(patch=patch, expires_at__gt=timezone.now(), skipped=False)
    assert sorted(live.values_list("reviewer__username", flat=True)) == holders


def test_the_row_counts_live_leases_whatever_expired_in_between(client, users, imported):
    """The row's count of leases was kept by +1 and -1, which drifted once a lease expired:
    a lease renewed from an expired row was never counted (a third reviewer got the read
    two held), and an expired lease still counted was never taken off (a free read was
    hidden). Found by a review helper; the count is now recounted from the lease rows."""
    imported.reviews_required = 3
    imported.save()
    api = f"/api/projects/{imported.slug}"
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    names = ("second", "third", "fourth")
    extra = {n: get_user_model().objects.create_user(n, password="pw") for n in names}
    for user in extra.values():
        set_membership(imported, user, Role.REVIEWER)
    lease = json.dumps({"queue": "unreviewed"})

    def as_user(user):
        client.force_login(user)
        return client

    def given_to(user) -> bool:
        items = post(as_user(user), f"{api}/queues/unreviewed/next/", '{"count": 200}')
        return patch.pk in [item["patch"] for item in items.json()["items"]]

    a, b = users["reviewer"], extra["second"]
    assert post(as_user(a), f"{api}/patches/{patch.pk}/lease/", lease).status_code == 200
    Lease.objects.filter(patch=patch, reviewer=a).update(
        expires_at=timezone.now() - timedelta(seconds=1))  # A's alone runs out; B's is new
    assert post(as_user(b), f"{api}/patches/{patch.pk}/lease/", lease).status_code == 200
    assert post(as_user(a), f"{api}/patches/{patch.pk}/reviews/", json.dumps(
        {"action": "confirm", "patch_version": patch.version})).status_code == 201
    # A decided, B holds a read: the third read is free
    assert given_to(extra["third"]), "a free read was hidden"
    assert not given_to(extra["fourth"]), "one read, two holders"

    patch.refresh_from_db()
    expire_leases(patch.pk)  # all run out; B comes back to the same (expired) row
    assert post(as_user(b), f"{api}/patches/{patch.pk}/lease/", lease).status_code == 200
    assert post(as_user(extra["third"]), f"{api}/patches/{patch.pk}/lease/",
                lease).status_code == 200
    assert not given_to(extra["fourth"]), "the renewed lease was not counted"
    live = Lease.objects.filter(patch=patch, skipped=False, expires_at__gt=timezone.now())
    assert sorted(live.values_list("reviewer__username", flat=True)) == ["second", "third"]


def test_a_refused_item_of_a_batch_never_hides_an_applied_one(reviewer, imported):
    """Issue 13 item 3: [confirm patch A, reopen patch B] as a reviewer answered 403 for the
    whole batch although A was confirmed. Each item now says what happened to it."""
    first, second = Patch.objects.filter(project=imported).order_by("id")[:2]
    body = {"decisions": [
        {"patch": first.pk, "action": "confirm", "patch_version": first.version},
        {"patch": second.pk, "action": "reopen", "patch_version": second.version},
        {"patch": 999999, "action": "confirm", "patch_version": 1}]}
    response = post(reviewer, f"/api/projects/{imported.slug}/reviews/batch/",
                    json.dumps(body))
    assert response.status_code == 200
    applied, refused, missing = response.json()["results"]  # in the order sent
    assert applied["status"] == 201 and applied["patch"]["id"] == first.pk
    assert refused["status"] == 403 and refused["patch"] == second.pk
    assert "admins" in refused["detail"]
    assert missing["status"] == 400 and missing["patch"] == 999999
    assert "no patch 999999" in missing["detail"]
    first.refresh_from_db()
    assert first.status == "confirmed"


def test_one_live_job_of_a_kind_per_project(client, users, imported, settings, tmp_path):
    """Issue 13 item 6: a fuzzer queued 1,071 train/predict jobs in ten minutes. A second job
    of a kind waits for the first (no worker runs here, so the first stays pending)."""
    api = f"/api/projects/{imported.slug}"
    client.force_login(users["admin"])
    first = client.post(f"{api}/inference-jobs/", {"kind": "train", "epochs": 1},
                        content_type="application/json")
    assert first.status_code == 201, first.content
    again = client.post(f"{api}/inference-jobs/", {"kind": "train", "epochs": 1},
                        content_type="application/json")
    assert again.status_code == 400
    assert f"train job {first.json()['id']} is already pending" in again.json()["detail"]
    client.post(f"{api}/inference-jobs/{first.json()['id']}/cancel/")
    assert client.post(f"{api}/inference-jobs/", {"kind": "train", "epochs": 1},
                       content_type="application/json").status_code == 201

    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    (tmp_path / "data").mkdir()
    page = f"/p/{imported.slug}/imports/"
    client.post(page, {"kind": "spider", "path": str(tmp_path / "data")})
    second = client.post(page, {"kind": "spider", "path": str(tmp_path / "data")}, follow=True)
    assert "is already pending: wait for it, or cancel it first" in second.content.decode()
    from annotations.models import ImportJob

    assert ImportJob.objects.filter(project=imported, status="pending").count() == 1


@pytest.mark.parametrize("size", ["1.5", "true", "0", "-3", "1001", "١"])
def test_page_size_must_be_a_whole_number_in_range(reviewer, imported, size):
    """Issue 13 item 2: page_size=1.5 or true was taken silently as the default."""
    response = reviewer.get(f"/api/projects/{imported.slug}/patches/?page_size={size}")
    assert response.status_code == 400 and "page_size" in response.json()


def test_page_size_in_range_pages(reviewer, imported):
    body = reviewer.get(f"/api/projects/{imported.slug}/patches/?page_size=3").json()
    assert len(body["results"]) == 3 and body["next"]


def test_the_schema_names_the_queues_and_every_error(reviewer):
    """Issue 13 item 2: {queue} had no enum; 400/404 were undocumented; a decision's 201
    was declared as the patch state at the top level though it is under "patch"."""
    paths = reviewer.get("/api/schema/?format=json").json()["paths"]
    nxt = paths["/api/projects/{project_slug}/queues/{queue}/next/"]["post"]
    queue = next(p for p in nxt["parameters"] if p["name"] == "queue")
    assert "unreviewed" in queue["schema"]["enum"] and "no-such-queue" not in \
        queue["schema"]["enum"]
    assert {"400", "401", "403", "404"} <= set(nxt["responses"])
    review = paths["/api/projects/{project_slug}/patches/{patch_id}/reviews/"]["post"]
    assert {"201", "400", "404", "409"} <= set(review["responses"])
    created = review["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    assert created.endswith("/DecisionResult")
    listing = paths["/api/projects/{project_slug}/patches/"]["get"]
    size = next(p for p in listing["parameters"] if p["name"] == "page_size")
    assert size["schema"] == {"type": "integer", "minimum": 1, "maximum": 1000}


# Found by a review helper through HTTP (2026-12-04): each of these was a 500 -----------------

def test_out_of_range_ids_times_and_nul_strings_are_400s_and_a_batch_applies_nothing(
        reviewer, imported):
    api = f"/api/projects/{imported.slug}"
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    url = f"{api}/patches/{patch.pk}/reviews/"
    confirm = {"action": "confirm", "patch_version": patch.version}
    for bad in ({"time_spent_ms": 3_000_000_000}, {"time_spent_ms": 10**20},
                {"shown_probabilities": {"a\x00": 1}}, {"shown_probabilities": ["\x00"]},
                {"action": "correct", "label": 10**20}):
        response = post(reviewer, url, json.dumps({**confirm, **bad}))
        assert response.status_code == 400, (bad, response.status_code)
    batch = post(reviewer, f"{api}/reviews/batch/", json.dumps({"decisions": [
        {**confirm, "patch": patch.pk},
        {**confirm, "patch": patch.pk + 1, "time_spent_ms": 3_000_000_000}]}))
    assert batch.status_code == 400 and "time_spent_ms" in batch.content.decode()
    too_many = post(reviewer, f"{api}/reviews/batch/", json.dumps({"decisions": [
        {**confirm, "patch": patch.pk, "action": "comment", "comment": "x"}] * 201}))
    assert too_many.status_code == 400
    huge_patch = post(reviewer, f"{api}/reviews/batch/", json.dumps({"decisions": [
        {**confirm, "patch": 10**20}]}))
    assert huge_patch.status_code == 400
    assert not patch.reviews.exists()  # nothing applied by a refused batch
    assert post(reviewer, f"{api}/queues/unreviewed/next/",
                json.dumps({"slide": 10**20})).status_code == 400
    answer = post(reviewer, f"{api}/candidates/{patch.pk}/answer/", json.dumps(
        {"proposed": 1, "answer": "yes", "patch_version": 1, "time_spent_ms": 10**12}))
    assert answer.status_code == 400
    assert reviewer.get(f"{api}/patches/?cursor=cD1hYmM%3D").status_code == 404  # p=abc
    assert post(reviewer, url, json.dumps(confirm)).status_code == 201  # a good one still goes


def test_page_forms_take_nul_characters_and_over_long_values_without_a_500(
        client, users, imported, settings, tmp_path):
    from django.urls import reverse

    settings.SPIDER_IMPORT_ROOTS = [str(tmp_path)]
    client.force_login(users["admin"])
    classes = reverse("classes", args=[imported.slug])
    for form in ({"name": "bad\x00name"}, {"name": "x" * 500}):
        response = client.post(classes, form, follow=True)
        assert response.status_code == 200
        assert "without NUL characters" in response.content.decode()
    assert not imported.classes.filter(name__startswith="x" * 100).exists()
    for raw_id in ("abc", "1\x00", "9" * 30):
        response = client.post(classes, {"id": raw_id, "colour": "#000000"})
        assert response.status_code == 404, raw_id
    response = client.post(reverse("members", args=[imported.slug]),
                           {"username": "reviewer\x00", "role": "viewer"}, follow=True)
    assert response.status_code == 200 and "No user named" in response.content.decode()
    start = reverse("start-import", args=[imported.slug])
    for path in (f"{tmp_path}/s2\x00", f"{tmp_path}/" + "x" * 5000):
        for kind in ("spider", "slide"):
            response = client.post(start, {"kind": kind, "path": path}, follow=True)
            assert response.status_code == 200, (kind, path[:40])
            assert "is not a usable path" in response.content.decode(), (kind, path[:40])
