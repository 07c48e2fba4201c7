"""Shared fixtures: users in every role, real tissue cut into SPIDER folders, media in tmp."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from annotations.actions import get_or_create_project, set_membership
from annotations.models import Role
from annotations.sample_data import build_spider_folder

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _fast_and_isolated(settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = tmp_path / "media"
    # Playwright's string predicates (wait_for_function) need eval, which the policy forbids;
    # tests/test_security_deploy.py puts the policy back and checks the pages under it.
    settings.SPIDER_CONTENT_SECURITY_POLICY = ""


@pytest.fixture(scope="session")
def sample_spider(tmp_path_factory) -> Path:
    """A SPIDER folder cut from the real sample (2 slides), built once per session."""
    root = tmp_path_factory.mktemp("sample") / "SPIDER-skin"
    build_spider_folder(root, slides=2, compress_level=1)
    return root


@pytest.fixture(scope="session")
def sample_spider_4(tmp_path_factory) -> Path:
    """Four slides: three train and one test, enough for slide-grouped folds and metrics."""
    root = tmp_path_factory.mktemp("sample4") / "SPIDER-skin"
    build_spider_folder(root, slides=4, compress_level=1)
    return root


@pytest.fixture
def spider_copy(sample_spider, tmp_path) -> Path:
    """A private copy of the sample folder that a test may damage."""
    target = tmp_path / "SPIDER-copy"
    shutil.copytree(sample_spider, target)
    return target


@pytest.fixture
def users(db):
    User = get_user_model()
    return {name: User.objects.create_user(name, password="pw")
            for name in ("admin", "reviewer", "viewer", "outsider")}


@pytest.fixture
def project(users):
    project = get_or_create_project("skin", name="Skin")
    set_membership(project, users["admin"], Role.ADMIN)
    set_membership(project, users["reviewer"], Role.REVIEWER)
    set_membership(project, users["viewer"], Role.VIEWER)
    return project


@pytest.fixture
def imported(project, sample_spider):
    call_command("import_spider", str(sample_spider), project=project.slug, json=True,
                 stdout=io.StringIO())
    return project


@pytest.fixture
def imported_4(project, sample_spider_4):
    call_command("import_spider", str(sample_spider_4), project=project.slug, json=True,
                 stdout=io.StringIO())
    return project



@pytest.fixture
def eager():
    """Run Celery tasks in this process (with django_db(transaction=True), so the on-commit
    hooks that queue them fire)."""
    from spider_web.celery import app

    previous = app.conf.task_always_eager
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = previous


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="session")
def browser():
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # live_server + sync playwright
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True,
                                             args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
