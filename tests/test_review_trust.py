"""Issue 10, server side, through HTTP: adjudication reachable, blind double reads on the patch
page, the project settings page with its audit rows, filters that release held leases, the
Review link only for reviewers, styled 403/404 pages, the reviewers page's honest figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from annotations.actions import set_membership
from annotations.models import Lease, Patch, PatchStatus, Review, Role
from annotations.reviewing import Decision, submit

pytestmark = pytest.mark.django_db


def post(client: Client, url: str, data: dict | None = None):
    return client.post(url, data or {}, content_type="application/json")


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def decide(project, user, patch, action, label=None):
    patch.refresh_from_db()
    return submit(project, user, patch.pk, Decision(action=action, patch_version=patch.version,
                                                    label_id=label))


def other_class(project, patch):
    return project.classes.exclude(pk=patch.current_label_id).order_by("index").first().pk


@pytest.fixture
def second(imported):
    user = get_user_model().objects.create_user("second", password="pw")
    set_membership(imported, user, Role.REVIEWER)
    return user


@pytest.fixture
def double_read(imported):
    imported.reviews_required = 2
    imported.save()
    return imported


# Bug 1: adjudication ---------------------------------------------------------------------

def test_admins_lease_disputed_items_whether_or_not_they_read_them(double_read, users, second):
    project = double_read
    read_by_admin, read_by_others = Patch.objects.filter(project=project).order_by("id")[:2]
    decide(project, users["reviewer"], read_by_admin, "confirm")
    decide(project, users["admin"], read_by_admin, "correct",
           other_class(project, read_by_admin))
    decide(project, users["reviewer"], read_by_others, "confirm")
    decide(project, second, read_by_others, "unsure")
    read_by_others.refresh_from_db()
    read_by_admin.refresh_from_db()
    assert {read_by_admin.status, read_by_others.status} == {PatchStatus.DISPUTED}

    base = f"/api/projects/{project.slug}"
    admin = logged_in(users["admin"])
    assert admin.get(f"{base}/queues/").json()["sizes"]["disputed"] == 2
    items = post(admin, f"{base}/queues/disputed/next/", {"count": 5}).json()["items"]
    assert sorted(i["patch"] for i in items) == [read_by_admin.pk, read_by_others.pk]

    # a second admin, who read neither, is not handed the items the first one holds
    other_admin = get_user_model().objects.create_user("other-admin", password="pw")
    set_membership(project, other_admin, Role.ADMIN)
    other = logged_in(other_admin)
    assert post(other, f"{base}/queues/disputed/next/", {"count": 5}).json()["items"] == []
    post(admin, f"{base}/patches/{read_by_others.pk}/skip/")
    again = post(other, f"{base}/queues/disputed/next/", {"count": 5}).json()["items"]
    assert [i["patch"] for i in again] == [read_by_others.pk]

    # the admin who read it adjudicates it; the dispute is settled and leaves the queue
    item = next(i for i in items if i["patch"] == read_by_admin.pk)
    label = other_class(project, read_by_admin)
    done = post(admin, f"{base}/patches/{item['patch']}/reviews/",
                {"action": "adjudicate", "label": label, "patch_version": item["version"]})
    assert done.status_code == 201, done.content
    assert done.json()["patch"]["status"] == PatchStatus.CORRECTED
    assert admin.get(f"{base}/queues/").json()["sizes"]["disputed"] == 1
    assert not Lease.objects.filter(patch=read_by_admin).exists()

    refused = post(logged_in(users["reviewer"]), f"{base}/queues/disputed/next/")
    assert refused.status_code == 400
    assert "only project admins adjudicate" in refused.json()["detail"]


def test_an_admins_confirm_or_correct_on_a_disputed_patch_adjudicates(double_read, users,
                                                                        second):
    """The review page sends the same keys on every queue: on a dispute, an admin's label
    settles it instead of adding a third read that leaves it disputed."""
    confirmed, corrected = Patch.objects.filter(project=double_read).order_by("id")[:2]
    for patch in (confirmed, corrected):
        decide(double_read, users["reviewer"], patch, "confirm")
        decide(double_read, second, patch, "correct", other_class(double_read, patch))
    base = f"/api/projects/{double_read.slug}"
    admin = logged_in(users["admin"])
    items = {i["patch"]: i for i in post(admin, f"{base}/queues/disputed/next/",
                                         {"count": 2}).json()["items"]}
    label = other_class(double_read, corrected)
    for patch, body in ((confirmed, {"action": "confirm"}),
                        (corrected, {"action": "correct", "label": label})):
        done = post(admin, f"{base}/patches/{patch.pk}/reviews/",
                    {**body, "patch_version": items[patch.pk]["version"]})
        assert done.status_code == 201, done.content
    assert Patch.objects.get(pk=confirmed.pk).status == PatchStatus.CONFIRMED
    assert Patch.objects.get(pk=corrected.pk).current_label_id == label
    assert set(Review.objects.filter(reviewer=users["admin"]).values_list(
        "action", flat=True)) == {"adjudicate"}
    assert post(admin, f"{base}/queues/disputed/next/").json()["items"] == []


# Bug 2: blind double reads on the patch page --------------------------------------------

def history_of(client: Client, project, patch) -> str:
    html = client.get(f"/p/{project.slug}/patches/{patch.pk}/").content.decode()
    return html[html.index('id="history"'):html.index("</ol>", html.index('id="history"'))]


def test_patch_page_keeps_an_open_double_read_blind(double_read, users, second):
    patch = Patch.objects.filter(project=double_read).order_by("id").first()
    decide(double_read, users["reviewer"], patch, "correct", other_class(double_read, patch))
    submit(double_read, users["reviewer"], patch.pk, Decision(
        action="comment", patch_version=Patch.objects.get(pk=patch.pk).version,
        comment="looks like a nevus to me"))

    theirs = history_of(logged_in(second), double_read, patch)
    assert "reviewer" not in theirs and "nevus" not in theirs and "Correct" not in theirs
    assert "imported with label" in theirs
    assert "reviewer" not in history_of(logged_in(users["viewer"]), double_read, patch)
    own = history_of(logged_in(users["reviewer"]), double_read, patch)
    assert "Correct" in own and "nevus" in own
    assert "Correct" in history_of(logged_in(users["admin"]), double_read, patch)

    decide(double_read, second, patch, "correct", other_class(double_read, patch))
    assert Patch.objects.get(pk=patch.pk).status == PatchStatus.CORRECTED
    settled = history_of(logged_in(second), double_read, patch)
    assert "reviewer" in settled and "nevus" in settled  # settled: the history is open


def test_a_stale_decision_on_an_open_double_read_does_not_reveal_the_first_read(
        double_read, users, second):
    """A 409 used to name who decided and the class they chose, so sending an old version on
    purpose (or by a near-simultaneous submit) opened a blind read. It now says only that
    the patch changed, except to the reader themselves and to admins."""
    patch = Patch.objects.filter(project=double_read).order_by("id").first()
    label = other_class(double_read, patch)
    url = f"/api/projects/{double_read.slug}/patches/{patch.pk}/reviews/"
    assert post(logged_in(users["reviewer"]), url, {"action": "correct", "patch_version": 1,
                                                    "label": label}).status_code == 201
    name = double_read.classes.get(pk=label).name

    stale = post(logged_in(second), url, {"action": "comment", "patch_version": 1,
                                          "comment": "x"})
    assert stale.status_code == 409
    detail = stale.json()["detail"]
    assert "changed since you loaded it" in detail and "version 2" in detail
    assert "reviewer" not in detail and name not in detail and "correct" not in detail
    assert stale.json()["patch"]["current_label"] == patch.current_label_id  # as imported
    batch = post(logged_in(second), f"/api/projects/{double_read.slug}/reviews/batch/",
                 {"decisions": [{"patch": patch.pk, "action": "confirm", "patch_version": 1}]})
    (result,) = batch.json()["results"]
    assert result["status"] == 409 and name not in result["detail"]

    for who in ("reviewer", "admin"):  # the reader's own decision; an admin sees all
        mine = post(logged_in(users[who]), url, {"action": "comment", "patch_version": 1,
                                                 "comment": "x"})
        assert mine.status_code == 409 and f"'correct to {name}'" in mine.json()["detail"]


def test_only_an_admin_leases_a_patch_as_disputed_and_sees_its_reads(double_read, users,
                                                                     second):
    """Leasing one patch took the queue from the body unchecked, and a disputed-queue item
    carries each reader's decision: a reviewer could read an open double read that way (a
    review helper found it)."""
    patch = Patch.objects.filter(project=double_read).order_by("id").first()
    label = other_class(double_read, patch)
    decide(double_read, users["reviewer"], patch, "correct", label)
    url = f"/api/projects/{double_read.slug}/patches/{patch.pk}/lease/"
    refused = post(logged_in(second), url, {"queue": "disputed"})
    assert refused.status_code == 400 and "only project admins" in refused.json()["detail"]
    assert "reads" not in refused.content.decode()
    admin = logged_in(users["admin"])
    open_read = post(admin, url, {"queue": "disputed"}).json()["item"]
    assert open_read["reads"] is None  # not disputed (yet): nothing to weigh, nothing shown
    decide(double_read, second, patch, "confirm")
    assert Patch.objects.get(pk=patch.pk).status == PatchStatus.DISPUTED
    disputed = post(admin, url, {"queue": "disputed"}).json()["item"]
    assert [(r["reviewer"], r["label"]) for r in disputed["reads"]] == [
        ("reviewer", label), ("second", patch.current_label_id)]


# Bug 3: project settings ----------------------------------------------------------------

def test_admin_sets_reads_audit_and_lease_time_with_an_audit_row(imported, users, settings):
    from annotations.models import ProjectSettingChange

    url = f"/p/{imported.slug}/settings/"
    admin = logged_in(users["admin"])
    page = admin.get(url).content.decode()
    assert 'value="5"' in page and "0.05" not in page  # the audit fraction as a percent
    assert f'value="{settings.SPIDER_LEASE_SECONDS}"' in page
    assert imported.lease_seconds == settings.SPIDER_LEASE_SECONDS

    response = admin.post(url, {"reviews_required": "2", "audit_percent": "12.5",
                                "lease_seconds": "600"})
    assert response.status_code == 302
    imported.refresh_from_db()
    assert (imported.reviews_required, imported.audit_fraction, imported.lease_seconds) == (
        2, 0.125, 600)
    changes = {c.field: (c.old_value, c.new_value, c.changed_by.username)
               for c in ProjectSettingChange.objects.filter(project=imported)}
    assert changes == {"reviews_required": ("1", "2", "admin"),
                       "audit_fraction": ("5%", "12.5%", "admin"),
                       "lease_seconds": ("300 s", "600 s", "admin")}
    page = admin.get(url).content.decode()
    assert "5% → 12.5%" in page and "1 → 2" in page and "300 s → 600 s" in page
    assert "12.5%" in admin.get(f"/p/{imported.slug}/").content.decode()

    # the lease time is the project's, in the API too
    before = timezone.now()
    item = post(logged_in(users["reviewer"]), f"/api/projects/{imported.slug}/queues/"
                "unreviewed/next/").json()["items"][0]
    lease = Lease.objects.get(patch_id=item["patch"])
    assert timedelta(seconds=590) < lease.expires_at - before < timedelta(seconds=610)

    # nothing changed, no row; out of range, refused with a message and nothing saved
    admin.post(url, {"reviews_required": "2", "audit_percent": "12.5", "lease_seconds": "600"})
    assert ProjectSettingChange.objects.filter(project=imported).count() == 3
    bad = admin.post(url, {"reviews_required": "4", "audit_percent": "150",
                           "lease_seconds": "600"}, follow=True).content.decode()
    assert "between 1 and 3" in bad and "between 0 and 100" in bad
    imported.refresh_from_db()
    assert imported.reviews_required == 2 and imported.audit_fraction == 0.125

    reviewer = logged_in(users["reviewer"])
    assert reviewer.get(url).status_code == 403
    assert reviewer.post(url, {"reviews_required": "1"}).status_code == 403


def test_lowering_reads_required_settles_the_waiting_patches(double_read, users):
    patch = Patch.objects.filter(project=double_read).order_by("id").first()
    decide(double_read, users["reviewer"], patch, "confirm")
    assert Patch.objects.get(pk=patch.pk).status == PatchStatus.UNREVIEWED
    logged_in(users["admin"]).post(f"/p/{double_read.slug}/settings/", {
        "reviews_required": "1", "audit_percent": "5", "lease_seconds": "300"})
    assert Patch.objects.get(pk=patch.pk).status == PatchStatus.CONFIRMED  # not stuck


# Bug 5: filters release what no longer matches ------------------------------------------

def test_a_new_class_filter_releases_held_items_of_other_classes(imported, users):
    base = f"/api/projects/{imported.slug}"
    reviewer = logged_in(users["reviewer"])
    first = post(reviewer, f"{base}/queues/unreviewed/next/", {"count": 5}).json()["items"]
    label = next(c for c in imported.classes.order_by("index")
                 if c.pk not in {i["current_label"] for i in first[:5]}
                 and Patch.objects.filter(project=imported, current_label=c).exists())
    filtered = post(reviewer, f"{base}/queues/unreviewed/next/",
                    {"count": 5, "current_label": label.pk}).json()["items"]
    assert filtered and all(i["current_label"] == label.pk for i in filtered)
    held = set(Lease.objects.filter(reviewer=users["reviewer"]).values_list("patch_id",
                                                                             flat=True))
    assert held == {i["patch"] for i in filtered}  # the others went back to the queue
    assert all(p.leases_held == 0 for p in Patch.objects.filter(pk__in=[i["patch"]
                                                                         for i in first]))
    # the matching ones stay yours, in the same order, under the same filter
    again = post(reviewer, f"{base}/queues/unreviewed/next/",
                 {"count": 5, "current_label": label.pk}).json()["items"]
    assert [i["patch"] for i in again] == [i["patch"] for i in filtered]


# Review link, 403, 404 ------------------------------------------------------------------

def test_a_viewer_sees_no_review_link(imported, users):
    patch = Patch.objects.filter(project=imported).first()
    pages = ["/", f"/p/{imported.slug}/", f"/p/{imported.slug}/patches/",
             f"/p/{imported.slug}/patches/{patch.pk}/", f"/p/{imported.slug}/reviewers/"]
    review = f'href="/p/{imported.slug}/review/'
    for url in pages:
        html = logged_in(users["viewer"]).get(url).content.decode()
        assert review not in html, url
    for url in pages[1:4]:
        assert review in logged_in(users["reviewer"]).get(url).content.decode(), url


def test_403_and_404_are_styled_pages_with_a_way_back(imported, users, settings):
    settings.DEBUG = False
    viewer = logged_in(users["viewer"])
    forbidden = viewer.get(f"/p/{imported.slug}/members/")
    assert forbidden.status_code == 403
    html = forbidden.content.decode()
    assert "site.css" in html and 'href="/"' in html and "admin role" in html
    missing = viewer.get("/p/no-such-project/")
    assert missing.status_code == 404
    html = missing.content.decode()
    assert "site.css" in html and 'href="/"' in html and "Not found" in html


# Reviewers page -------------------------------------------------------------------------

def test_reviewers_page_is_honest_about_lone_readers_and_grid_decisions(imported, users):
    base = f"/api/projects/{imported.slug}"
    reviewer = logged_in(users["reviewer"])
    items = post(reviewer, f"{base}/queues/unreviewed/next/", {"count": 4}).json()["items"]
    post(reviewer, f"{base}/patches/{items[0]['patch']}/reviews/",
         {"action": "confirm", "patch_version": items[0]["version"], "time_spent_ms": 2000})
    post(reviewer, f"{base}/reviews/batch/", {"decisions": [
        {"patch": i["patch"], "action": "confirm", "patch_version": i["version"]}
        for i in items[1:]]})
    assert Review.objects.filter(reviewer=users["reviewer"]).count() == 4
    html = reviewer.get(f"/p/{imported.slug}/reviewers/").content.decode()
    rows = html[html.index('id="reviewer-rows"'):html.index("</table>")]
    assert "100%" not in rows and "no second reader" in rows
    assert '<td class="num">1</td><td class="num">3</td>' in rows  # timed single, grid
    assert "/admin/" not in html


# Small ----------------------------------------------------------------------------------

def test_favicon_is_served_locally_and_linked(client, users):
    from django.contrib.staticfiles import finders

    client.force_login(users["viewer"])
    html = client.get("/").content.decode()
    assert 'rel="icon"' in html and "/static/annotations/favicon.svg" in html
    assert finders.find("annotations/favicon.svg")
