"""Login everywhere; non-members get 404 on every page and endpoint; roles decide the rest."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from annotations.models import Patch, Slide, Tile


@pytest.fixture
def objects(imported):
    patch = Patch.objects.filter(project=imported).first()
    return {"slug": imported.slug, "patch": patch.id, "tile": patch.centre_tile_id,
            "slide": Slide.objects.filter(project=imported).first().id}


def project_urls(o) -> list[str]:
    slug = o["slug"]
    return [
        reverse("project-detail", args=[slug]),
        reverse("patch-list", args=[slug]),
        reverse("patch-detail", args=[slug, o["patch"]]),
        reverse("members", args=[slug]),
        reverse("classes", args=[slug]),
        reverse("tile-image", args=[o["tile"]]),
        f"/api/projects/{slug}/",
        f"/api/projects/{slug}/classes/",
        f"/api/projects/{slug}/slides/",
        f"/api/projects/{slug}/patches/",
        f"/api/projects/{slug}/patches/{o['patch']}/",
        f"/api/projects/{slug}/import-jobs/",
        f"/api/tiles/{o['tile']}/image/",
    ]


def test_anonymous_is_sent_to_login_or_refused(client, objects):
    for url in [*project_urls(objects), reverse("project-list")]:
        response = client.get(url)
        if url.startswith("/api/"):
            assert response.status_code in (401, 403), url
        else:
            assert response.status_code == 302 and "/accounts/login/" in response["Location"], url


def test_non_member_gets_404_everywhere(client, users, objects):
    client.force_login(users["outsider"])
    for url in project_urls(objects):
        assert client.get(url).status_code == 404, url
    assert objects["slug"] not in client.get(reverse("project-list")).content.decode()
    assert client.get("/api/projects/").json()["results"] == []


def test_members_can_read_everything(client, users, objects):
    for name in ("viewer", "reviewer", "admin"):
        client.force_login(users[name])
        for url in project_urls(objects):
            if "members" in url or "classes" in url:
                continue  # admin only, tested below and in test_classes
            assert client.get(url).status_code == 200, (name, url)


def test_only_admins_manage_members(client, users, objects):
    url = reverse("members", args=[objects["slug"]])
    for name in ("viewer", "reviewer"):
        client.force_login(users[name])
        assert client.get(url).status_code == 403
        assert client.post(url, {"username": "outsider", "role": "admin"}).status_code == 403
    client.force_login(users["admin"])
    response = client.post(url, {"username": "outsider", "role": "viewer"})
    assert response.status_code == 302
    client.force_login(users["outsider"])
    assert client.get(reverse("project-detail", args=[objects["slug"]])).status_code == 200


def test_token_auth_for_scripts(client, users, objects):
    token = Token.objects.create(user=users["viewer"])
    response = client.get(f"/api/projects/{objects['slug']}/patches/",
                          HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 200 and response.json()["results"]
    outsider = Token.objects.create(user=users["outsider"])
    response = client.get(f"/api/projects/{objects['slug']}/patches/",
                          HTTP_AUTHORIZATION=f"Token {outsider.key}")
    assert response.status_code == 404


def test_tiles_of_other_projects_are_404(client, users, imported, sample_spider):
    from annotations.actions import get_or_create_project, set_membership
    from annotations.importing import import_spider

    other = get_or_create_project("other")
    set_membership(other, users["outsider"], "admin")
    import_spider(other, sample_spider)
    tile = Tile.objects.filter(project=imported).first()
    client.force_login(users["outsider"])
    assert client.get(reverse("tile-image", args=[tile.id])).status_code == 404


def test_a_project_keeps_an_admin(client, users, project):
    """Its only admin could make themselves a viewer (or another admin remove the last one),
    leaving nobody who could manage members, classes or settings."""
    from annotations.models import Membership

    url = reverse("members", args=[project.slug])
    client.force_login(users["admin"])
    page = client.post(url, {"username": "admin", "role": "viewer"}, follow=True)
    assert "admin is the only admin of Skin: make someone else admin first" in \
        page.content.decode()
    def role(name: str) -> str:
        return Membership.objects.get(project=project, user=users[name]).role

    assert role("admin") == "admin"
    client.post(url, {"username": "reviewer", "role": "admin"})
    client.post(url, {"username": "admin", "role": "viewer"})  # now someone else is admin
    assert role("admin") == "viewer"
    client.force_login(users["reviewer"])
    page = client.post(url, {"username": "reviewer", "role": "reviewer"}, follow=True)
    assert "only admin" in page.content.decode()
    assert list(Membership.objects.filter(project=project, role="admin")
                .values_list("user__username", flat=True)) == ["reviewer"]
