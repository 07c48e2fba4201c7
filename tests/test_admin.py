"""Django admin works for staff; review history cannot be edited there."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import Client

from annotations.models import LabelClass, Patch, Review


def test_staff_can_use_the_admin(client, imported):
    staff = get_user_model().objects.create_superuser("root", password="pw")
    client.force_login(staff)
    patch = Patch.objects.filter(project=imported).first()
    for url in ["/admin/", "/admin/annotations/project/", "/admin/annotations/patch/",
                f"/admin/annotations/patch/{patch.id}/change/", "/admin/annotations/tile/",
                "/admin/annotations/importjob/", "/admin/annotations/review/",
                f"/admin/annotations/project/{imported.id}/change/"]:
        assert client.get(url).status_code == 200, url


def test_non_staff_cannot_use_the_admin(client, users, imported):
    client.force_login(users["admin"])  # a project admin is not Django staff
    assert client.get("/admin/annotations/patch/").status_code == 302


def raw_rows() -> list[str]:
    """Every review row as PostgreSQL prints it, so any change to any column shows."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT r::text FROM {Review._meta.db_table} r ORDER BY id")
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def reviewed_once(imported, users):
    """A correction recorded the real way (the review API), and a staff admin client."""
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    other = LabelClass.objects.filter(project=imported).exclude(pk=patch.current_label_id)[0]
    reviewer = Client()
    reviewer.force_login(users["reviewer"])
    response = reviewer.post(
        f"/api/projects/{imported.slug}/patches/{patch.pk}/reviews/",
        {"action": "correct", "label": other.pk, "patch_version": patch.version,
         "comment": "looks like dermis"}, content_type="application/json")
    assert response.status_code == 201, response.content
    review = Review.objects.get(patch=patch)
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root", password="pw"))
    return review, other, staff


def tampered_form(review: Review, users) -> dict:
    """A complete, valid change form for ``review`` that alters every editable field, so an
    editable ReviewAdmin would save it rather than re-show the form with errors."""
    return {"patch": review.patch_id, "reviewer": users["admin"].pk, "action": "confirm",
            "from_label": review.to_label_id, "to_label": review.from_label_id,
            "reason": "other", "comment": "rewritten history", "patch_version": 7,
            "time_spent_ms": 1, "model_version": "forged", "shown_probabilities": "null"}


def test_staff_cannot_change_a_review(reviewed_once, users):
    review, _, staff = reviewed_once
    before = raw_rows()
    url = f"/admin/annotations/review/{review.pk}/change/"
    saves = [staff.post(url, tampered_form(review, users)),
             staff.post(url, {**tampered_form(review, users), "_continue": "1"})]
    # The database first: whatever the admin answered, the row must not have moved.
    assert raw_rows() == before
    review.refresh_from_db()
    assert (review.action, review.comment, review.reviewer) == (
        "correct", "looks like dermis", users["reviewer"])
    assert [r.status_code for r in saves] == [403, 403]
    page = staff.get(url)
    assert page.status_code == 200  # staff may read it...
    assert 'name="_save"' not in page.content.decode()  # ...but the page offers no save


def test_staff_cannot_delete_a_review(reviewed_once):
    review, _, staff = reviewed_once
    before = raw_rows()
    url = f"/admin/annotations/review/{review.pk}/delete/"
    confirm = staff.post(url, {"post": "yes"})
    # nor through the change list's bulk "delete selected" action
    bulk = staff.post("/admin/annotations/review/", {
        "action": "delete_selected", "_selected_action": [review.pk], "post": "yes"})
    assert raw_rows() == before and Review.objects.filter(pk=review.pk).exists()
    assert confirm.status_code == 403 and bulk.status_code in (200, 302)
    assert staff.get(url).status_code == 403


def test_staff_cannot_add_a_review(reviewed_once, users):
    review, _, staff = reviewed_once
    before = raw_rows()
    forged = staff.post("/admin/annotations/review/add/", tampered_form(review, users))
    assert raw_rows() == before
    assert forged.status_code == 403
    assert staff.get("/admin/annotations/review/add/").status_code == 403
