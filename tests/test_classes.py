"""Project admins manage classes: add with an exact name, change colour and hotkey."""

from __future__ import annotations

from django.urls import reverse

from annotations.models import LabelClass


def test_admin_adds_and_edits_classes(client, users, imported):
    url = reverse("classes", args=[imported.slug])
    client.force_login(users["admin"])
    n = imported.classes.count()
    client.post(url, {"name": "Kaposi\u2019s sarcoma", "colour": "#aa0000", "hotkey": "k"})
    added = LabelClass.objects.get(project=imported, name="Kaposi\u2019s sarcoma")
    assert added.index == n and added.hotkey == "k"
    response = client.post(url, {"id": added.id, "colour": "#00aa00", "hotkey": "s"},
                           follow=True)
    assert "must be one letter or digit other than the review pages' command keys: s (skip)" \
        in response.content.decode().replace("&#x27;", "'")
    for command in "nNmM":  # the candidates queue's "no" and "more like this" (found in use)
        response = client.post(url, {"id": added.id, "colour": "#00aa00", "hotkey": command},
                               follow=True)
        assert "command keys" in response.content.decode(), command
    added.refresh_from_db()
    assert added.hotkey == "k"
    other = imported.classes.exclude(pk=added.pk).first()
    response = client.post(url, {"id": added.id, "colour": "#00aa00", "hotkey": other.hotkey},
                           follow=True)
    assert "already used by" in response.content.decode()
    client.post(url, {"id": added.id, "colour": "#00aa00", "hotkey": "Q"})
    added.refresh_from_db()  # stored as the pages match it: a lower-case key
    assert (added.colour, added.hotkey, added.name) == ("#00aa00", "q", "Kaposi\u2019s sarcoma")


def test_reviewers_cannot_manage_classes(client, users, imported):
    client.force_login(users["reviewer"])
    url = reverse("classes", args=[imported.slug])
    assert client.get(url).status_code == 403
    assert client.post(url, {"name": "New"}).status_code == 403
    assert not LabelClass.objects.filter(name="New").exists()
