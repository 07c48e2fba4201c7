"""The review API: what a script (or another front end) does to review."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from annotations.actions import set_membership
from annotations.models import Patch, Review, Role


@pytest.fixture
def api(client, users, imported):
    client.force_login(users["reviewer"])
    return client, f"/api/projects/{imported.slug}"


def post(client, url, data=None):
    return client.post(url, data or {}, content_type="application/json")


def test_next_review_and_stale_conflict(api, users, imported):
    client, base = api
    sizes = client.get(f"{base}/queues/").json()["sizes"]
    assert sizes["unreviewed"] == Patch.objects.filter(project=imported).count()
    items = post(client, f"{base}/queues/unreviewed/next/", {"count": 3}).json()["items"]
    assert len(items) == 3 and len(items[0]["grid"]) == 25 and items[0]["model"] is None
    assert items[0]["grid"][12].startswith("/tiles/")
    first = items[0]
    response = post(client, f"{base}/patches/{first['patch']}/reviews/",
                    {"action": "confirm", "patch_version": first["version"],
                     "time_spent_ms": 1200})
    assert response.status_code == 201, response.content
    assert response.json()["patch"]["status"] == "confirmed"

    stale = post(client, f"{base}/patches/{first['patch']}/reviews/",
                 {"action": "unsure", "patch_version": first["version"]})
    assert stale.status_code == 409
    assert "reviewer recorded 'confirm to " in stale.json()["detail"]
    assert stale.json()["patch"]["version"] == first["version"] + 1
    assert Review.objects.filter(patch_id=first["patch"]).count() == 1

    left = post(client, f"{base}/queues/unreviewed/next/", {"count": 3}).json()["items"]
    assert [i["patch"] for i in left[:2]] == [i["patch"] for i in items[1:]]  # still mine


def test_batch_skip_and_exclude_reason(api, imported):
    client, base = api
    items = post(client, f"{base}/queues/unreviewed/next/", {"count": 4}).json()["items"]
    other = imported.classes.exclude(pk=items[0]["current_label"]).first()
    result = post(client, f"{base}/reviews/batch/", {"decisions": [
        {"patch": items[0]["patch"], "action": "correct", "label": other.pk,
         "patch_version": items[0]["version"]},
        {"patch": items[1]["patch"], "action": "confirm", "patch_version": items[1]["version"]},
        {"patch": items[2]["patch"], "action": "confirm", "patch_version": 99},
        {"patch": items[3]["patch"], "action": "exclude", "patch_version": items[3]["version"]},
    ]}).json()["results"]
    assert [r["status"] for r in result] == [201, 201, 409, 400]
    assert "reason" in result[3]["detail"]
    assert post(client, f"{base}/patches/{items[2]['patch']}/skip/").status_code == 204
    again = post(client, f"{base}/queues/unreviewed/next/", {"count": 2}).json()["items"]
    assert items[2]["patch"] not in [i["patch"] for i in again]


def test_permissions(client, users, imported):
    base = f"/api/projects/{imported.slug}"
    patch = Patch.objects.filter(project=imported).first()
    client.force_login(users["viewer"])
    assert post(client, f"{base}/queues/unreviewed/next/").status_code == 403
    assert post(client, f"{base}/patches/{patch.pk}/reviews/",
                {"action": "confirm", "patch_version": 1}).status_code == 403
    client.force_login(users["reviewer"])
    assert post(client, f"{base}/patches/{patch.pk}/reviews/",
                {"action": "adjudicate", "label": patch.current_label_id,
                 "patch_version": 1}).status_code == 403
    assert post(client, f"{base}/queues/disputed/next/").status_code == 400
    client.force_login(users["outsider"])
    assert client.get(f"{base}/queues/").status_code == 404


def test_review_history_stays_blind_during_a_double_read(users, imported):
    imported.reviews_required = 2
    imported.save()
    second = get_user_model().objects.create_user("second", password="pw")
    set_membership(imported, second, Role.REVIEWER)
    base = f"/api/projects/{imported.slug}"
    first_client, second_client, admin_client = Client(), Client(), Client()
    first_client.force_login(users["reviewer"])
    second_client.force_login(second)
    admin_client.force_login(users["admin"])
    item = post(first_client, f"{base}/queues/unreviewed/next/").json()["items"][0]
    post(first_client, f"{base}/patches/{item['patch']}/reviews/",
         {"action": "confirm", "patch_version": item["version"]})
    theirs = post(second_client, f"{base}/queues/unreviewed/next/").json()["items"][0]
    assert theirs["patch"] == item["patch"] and theirs["status"] == "unreviewed"
    assert second_client.get(f"{base}/reviews/?patch={item['patch']}").json()["results"] == []
    assert len(admin_client.get(f"{base}/reviews/?patch={item['patch']}").json()[
        "results"]) == 1


def test_schema_lists_the_review_endpoints(client, users):
    client.force_login(users["admin"])
    schema = client.get("/api/schema/?format=json").json()["paths"]
    for path in ("/api/projects/{project_slug}/queues/{queue}/next/",
                 "/api/projects/{project_slug}/patches/{patch_id}/reviews/",
                 "/api/projects/{project_slug}/reviews/batch/",
                 "/api/projects/{project_slug}/leases/"):
        assert path in schema


def test_next_honours_class_and_split_filters(api, imported):
    client, base = api
    label = imported.classes.order_by("index").first()
    items = post(client, f"{base}/queues/unreviewed/next/",
                 {"count": 20, "current_label": label.pk, "split": "train"}).json()["items"]
    assert items and all(i["current_label"] == label.pk and i["split"] == "train"
                         for i in items)
    page = client.get(f"/p/{imported.slug}/review/?queue=unreviewed&current_label={label.pk}")
    assert f'"current_label": "{label.pk}"' in page.content.decode()  # handed to the page JS
