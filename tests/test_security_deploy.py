"""Deployment settings (issue 13, item 10): HTTPS settings from the environment, a clean
``check --deploy`` with production settings, a Content-Security-Policy that the pages live
with (no inline script), and the schema and Swagger UI behind login."""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
POLICY = django_settings.SPIDER_CONTENT_SECURITY_POLICY  # before conftest switches it off
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
              "ALLOWED_HOSTS": "spider.example.org", "HTTPS": "1",
              "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https"}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SECURE_", "SESSION_COOKIE", "CSRF_COOKIE", "HTTPS",
                                 "DJANGO_ALLOW_ASYNC_UNSAFE"))}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, text=True,
                          capture_output=True, env={**base, **env}, timeout=120)


def test_check_deploy_is_clean_with_production_settings():
    done = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    # The same without HTTPS=1 is not clean: the check is a real one.
    plain = manage("check", "--deploy", "--fail-level", "WARNING",
                   **{**PRODUCTION, "HTTPS": "0"})
    assert plain.returncode != 0 and "security.W004" in plain.stderr + plain.stdout


def test_https_settings_come_from_the_environment():
    script = ("import json; from django.conf import settings as s; print(json.dumps({k: "
              "getattr(s, k, None) for k in ('SECURE_SSL_REDIRECT', 'SECURE_HSTS_SECONDS', "
              "'SECURE_HSTS_INCLUDE_SUBDOMAINS', 'SECURE_PROXY_SSL_HEADER', "
              "'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE')}))")
    on = json.loads(manage("shell", "-c", script, **PRODUCTION).stdout.strip().splitlines()[-1])
    assert on == {"SECURE_SSL_REDIRECT": True, "SECURE_HSTS_SECONDS": 31536000,
                  "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
                  "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
                  "SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True}
    tuned = json.loads(manage("shell", "-c", script, **{
        **PRODUCTION, "SECURE_HSTS_SECONDS": "600", "SECURE_SSL_REDIRECT": "0"}
        ).stdout.strip().splitlines()[-1])
    assert tuned["SECURE_HSTS_SECONDS"] == 600 and tuned["SECURE_SSL_REDIRECT"] is False
    bad = manage("shell", "-c", script, **{**PRODUCTION, "SECURE_PROXY_SSL_HEADER": "https"})
    assert bad.returncode != 0 and "SECURE_PROXY_SSL_HEADER" in bad.stderr


def test_import_settings_come_from_the_environment_and_refuse_nonsense():
    script = ("from django.conf import settings as s; "
              "print(s.SPIDER_IMPORT_WORKERS, s.SPIDER_IMPORT_BATCH)")
    cores = len(os.sched_getaffinity(0))
    default = manage("shell", "-c", script)
    assert default.stdout.split()[-2:] == [str(max(1, min(8, cores))), "2000"], default.stderr
    tuned = manage("shell", "-c", script, SPIDER_IMPORT_WORKERS="6", SPIDER_IMPORT_BATCH="300")
    assert tuned.stdout.split()[-2:] == ["6", "300"], tuned.stderr
    for name in ("SPIDER_IMPORT_WORKERS", "SPIDER_IMPORT_BATCH"):
        bad = manage("shell", "-c", script, **{name: "0"})
        assert bad.returncode != 0 and f"{name}='0': must be at least 1" in bad.stderr


@pytest.mark.django_db
def test_https_on_redirects_and_sends_hsts_and_secure_cookies(client, users, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    plain = client.get("/accounts/login/")
    assert plain.status_code == 301 and plain["Location"].startswith("https://")
    secure = client.post("/accounts/login/", {"username": "admin", "password": "pw"},
                         HTTP_X_FORWARDED_PROTO="https")
    assert secure.status_code == 302
    assert secure["Strict-Transport-Security"].startswith("max-age=31536000")
    assert secure.cookies["sessionid"]["secure"]


@pytest.fixture
def policy(settings):
    settings.SPIDER_CONTENT_SECURITY_POLICY = POLICY


@pytest.mark.django_db
def test_every_response_carries_the_policy(client, users, policy):
    for path in ("/accounts/login/", "/api/projects/"):
        policy = client.get(path)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "'unsafe-inline'" not in \
            policy.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy


def test_no_template_has_inline_script_or_event_handler_attributes():
    inline, handlers = [], []
    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and "application/json" not in tag:
                inline.append(f"{template.name}: {tag}")
        handlers += [f"{template.name}: {m}" for m in re.findall(r"\son[a-z]+\s*=", text)]
        if "javascript:" in text:
            handlers.append(f"{template.name}: javascript: URL")
    assert inline == [] and handlers == []


@pytest.mark.django_db
def test_schema_and_swagger_ui_need_a_login(client, users):
    for path in ("/api/schema/", "/api/docs/", "/api/docs/?script"):
        assert client.get(path).status_code in (401, 403), path
    client.force_login(users["viewer"])
    assert client.get("/api/schema/?format=json").json()["openapi"].startswith("3.")
    html = client.get("/api/docs/").content.decode()
    assert "<script src=" in html and not re.search(r"<script>(?!\s*</script>)", html)
    script = client.get("/api/docs/?script")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_pages_run_under_the_policy_in_a_browser(page, live_server, users, imported, policy):
    """Every page a user meets, in Chromium: no policy violation, and the policy does stop an
    injected inline script."""
    from annotations.models import Patch, Slide
    from annotations.sample_data import sample_image_path

    call_command("import_slide", str(sample_image_path()), project=imported.slug, json=True,
                 stdout=io.StringIO(), stderr=io.StringIO())
    slide = Slide.objects.filter(project=imported, width__gt=0).latest("id")
    violations: list[str] = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "pw")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    slug = imported.slug
    patch = Patch.objects.filter(project=imported).order_by("id").first()
    for path in (f"/p/{slug}/", f"/p/{slug}/patches/", f"/p/{slug}/patches/{patch.pk}/",
                 f"/p/{slug}/review/?queue=unreviewed", f"/p/{slug}/review/grid/",
                 f"/p/{slug}/reviewers/", f"/p/{slug}/settings/", "/api/docs/",
                 f"/p/{slug}/slides/{slide.pk}/"):
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
    page.wait_for_selector("#slide-viewer canvas", timeout=15000)  # OpenSeadragon (a worker)
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".swagger-ui .info", timeout=15000)  # its script ran, from a file
    page.goto(f"{live_server.url}/p/{slug}/review/?queue=unreviewed")
    page.wait_for_selector("#context-grid img", timeout=15000)  # the review page's script ran
    assert violations == []
    ran = page.evaluate("""() => { const s = document.createElement('script');
        s.textContent = 'window.__injected = 1'; document.body.appendChild(s);
        return window.__injected === 1; }""")
    assert ran is False
    assert any("Content Security Policy" in v for v in violations)
