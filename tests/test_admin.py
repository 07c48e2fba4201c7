"""Django admin works for staff; review history cannot be edited there."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from annotations.models import Patch


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
