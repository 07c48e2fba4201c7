"""Accounts under attack (issue 13, item 9): failed logins are throttled per username and per
client address on the login page, the token endpoint and the admin; tokens expire, die with
a password change and can be revoked; a password reset without mail says so."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"
TOKEN = "/api/auth/token/"


def login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password},
                       REMOTE_ADDR=address)


def token_for(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(TOKEN, {"username": username, "password": password},
                       REMOTE_ADDR=address)


def logged_in(client) -> bool:
    return client.get("/").status_code == 200


def test_the_login_page_locks_a_username_after_repeated_failures(client, users, settings):
    settings.SPIDER_LOGIN_MAX_FAILURES = 5
    for _ in range(5):
        assert "Please enter a correct username" in login(client, "admin", "wrong").content \
            .decode()
    refused = login(client, "admin", "pw")  # the right password, too late
    assert refused.status_code == 200 and "Too many failed logins" in refused.content.decode()
    assert not logged_in(client)
    # Another address does not unlock the username; another username is not locked.
    assert "Too many failed logins" in login(client, "admin", "pw", "10.9.9.9").content.decode()
    assert login(client, "reviewer", "pw").status_code == 302 and logged_in(client)


def test_the_lock_ends_after_its_window(client, users, settings):
    settings.SPIDER_LOGIN_MAX_FAILURES = 2
    settings.SPIDER_LOGIN_LOCKOUT_SECONDS = 1
    login(client, "admin", "wrong")
    login(client, "admin", "wrong")
    assert "Too many failed logins" in login(client, "admin", "pw").content.decode()
    time.sleep(1.2)
    assert login(client, "admin", "pw").status_code == 302 and logged_in(client)


def test_one_address_trying_many_usernames_is_locked_out(client, users, settings):
    settings.SPIDER_LOGIN_MAX_FAILURES_PER_ADDRESS = 6
    for n in range(6):
        login(client, f"guess{n}", "wrong", address="203.0.113.7")
    refused = login(client, "viewer", "pw", address="203.0.113.7")
    assert "Too many failed logins" in refused.content.decode() and not logged_in(client)
    assert login(client, "viewer", "pw", address="198.51.100.2").status_code == 302


def test_the_token_endpoint_answers_429_once_locked(client, users, settings):
    settings.SPIDER_LOGIN_MAX_FAILURES = 3
    for _ in range(3):
        assert token_for(client, "admin", "wrong").status_code == 400
    locked = token_for(client, "admin", "pw")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.json()["detail"]
    assert 0 < int(locked["Retry-After"]) <= settings.SPIDER_LOGIN_LOCKOUT_SECONDS
    assert not Token.objects.exists()
    # Failures on the API count for the login page as well: one throttle for both.
    assert "Too many failed logins" in login(client, "admin", "pw").content.decode()


def test_non_object_token_bodies_are_a_400(client, users):
    for raw in ("[]", '"x"', "null"):
        response = client.post(TOKEN, raw, content_type="application/json")
        assert response.status_code == 400, raw


def api(client, token: str, path: str = "/api/projects/"):
    return client.get(path, HTTP_AUTHORIZATION=f"Token {token}")


def test_tokens_expire_and_a_new_one_is_issued(client, users, settings):
    settings.SPIDER_TOKEN_LIFETIME_SECONDS = 3600
    answer = token_for(client, "admin", "pw").json()
    assert api(client, answer["token"]).status_code == 200
    assert answer["expires_at"]
    Token.objects.update(created=timezone.now() - timedelta(hours=2))
    expired = api(client, answer["token"])
    assert expired.status_code in (401, 403) and "expired" in expired.json()["detail"]
    fresh = token_for(client, "admin", "pw").json()["token"]
    assert fresh != answer["token"] and api(client, fresh).status_code == 200


def test_a_password_change_ends_the_old_token(client, users):
    old = token_for(client, "admin", "pw").json()["token"]
    client.force_login(users["admin"])
    changed = client.post("/accounts/password_change/", {
        "old_password": "pw", "new_password1": "a-new-long-passphrase-9",
        "new_password2": "a-new-long-passphrase-9"})
    assert changed.status_code == 302
    client.logout()
    assert api(client, old).status_code in (401, 403)
    assert token_for(client, "admin", "a-new-long-passphrase-9").status_code == 200
    users["admin"].refresh_from_db()
    users["admin"].last_login = timezone.now()
    users["admin"].save(update_fields=["last_login"])  # other saves keep the token
    assert Token.objects.filter(user=users["admin"]).exists()


def test_owners_revoke_their_token_and_staff_see_tokens_in_admin(client, users):
    key = token_for(client, "admin", "pw").json()["token"]
    revoked = client.post("/api/auth/token/revoke/", HTTP_AUTHORIZATION=f"Token {key}")
    assert revoked.status_code == 204
    assert api(client, key).status_code in (401, 403)
    assert client.post("/api/auth/token/revoke/").status_code in (401, 403)  # anonymous
    token_for(client, "reviewer", "pw")
    staff = users["outsider"]
    staff.is_staff = staff.is_superuser = True
    staff.save()
    client.force_login(staff)
    listing = client.get("/admin/authtoken/tokenproxy/")
    assert listing.status_code == 200 and "reviewer" in listing.content.decode()


def test_password_reset_says_when_no_mail_is_set_up(client, users, settings):
    users["admin"].email = "admin@example.org"
    users["admin"].save()
    settings.SPIDER_MAIL_CONFIGURED = False
    page = client.get("/accounts/password_reset/").content.decode()
    assert "no mail set up" in page and "<form" not in page.split("<main>")[1]
    posted = client.post("/accounts/password_reset/", {"email": "admin@example.org"},
                         follow=True).content.decode()
    assert "no mail set up" in posted and "We’ve emailed you" not in posted
    assert "no mail set up" in client.get("/accounts/password_reset/done/").content.decode()
    assert mail.outbox == []

    settings.SPIDER_MAIL_CONFIGURED = True  # (the test runner's mail backend keeps mail)
    sent = client.post("/accounts/password_reset/", {"email": "admin@example.org"},
                       follow=True)
    assert sent.status_code == 200 and len(mail.outbox) == 1


def test_every_call_checks_the_token_user_and_membership_afresh(client, project, users):
    """The token and membership checks run statements compiled once per process: a changed
    row must still count on the very next call, with nothing remembered in between."""
    from annotations.models import Membership

    key = token_for(client, "reviewer", "pw").json()["token"]
    path = f"/api/projects/{project.slug}/queues/"
    assert api(client, key, path).status_code == 200
    unknown = api(client, key[:-1] + ("0" if key[-1] != "0" else "1"), path)
    assert unknown.status_code in (401, 403) and unknown.json()["detail"] == "Invalid token."
    Membership.objects.filter(project=project, user=users["reviewer"]).delete()
    assert api(client, key, path).status_code == 404  # not a member: the project is hidden
    users["reviewer"].is_active = False
    users["reviewer"].save(update_fields=["is_active"])
    inactive = api(client, key, path)
    assert inactive.status_code in (401, 403) and inactive.json()["detail"] == \
        "User inactive or deleted."


def test_the_demos_automatic_login_leaves_token_requests_alone(users, imported, settings):
    """With the demo's automatic login on, POST /api/auth/token/ answered 'CSRF Failed' and
    a request with a reviewer's token was taken as the demo user (found by a browser walk)."""
    from django.test import Client

    settings.DEMO_AUTOLOGIN_USER = "admin"
    client = Client(enforce_csrf_checks=True)  # as curl: no CSRF cookie (middleware is
    # built on the first request, with the setting)
    response = client.post(TOKEN, {"username": "reviewer", "password": "pw"})
    assert response.status_code == 200, response.content
    token = response.json()["token"]
    api = Client(enforce_csrf_checks=True, HTTP_AUTHORIZATION=f"Token {token}")
    projects = api.get("/api/projects/").json()["results"]
    assert [p["role"] for p in projects if p["slug"] == imported.slug] == ["reviewer"]
    leased = api.post(f"/api/projects/{imported.slug}/queues/unreviewed/next/", {"count": 1},
                      content_type="application/json")
    assert leased.status_code == 200, leased.content  # no CSRF refusal for a token
    page = Client().get("/")  # a browser without credentials still opens logged in
    assert page.status_code == 200 and page.wsgi_request.user.username == "admin"


def test_an_api_call_without_credentials_is_a_401_with_the_token_challenge(client):
    """It was a bare 403 (session authentication came first), where a script expects 401
    and the scheme to use."""
    response = client.get("/api/projects/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
