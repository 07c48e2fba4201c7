"""The demo command: users, a real-tissue project imported as user data, planted errors."""

from __future__ import annotations

import io
import json

from django.core.management import call_command

from annotations.models import Patch, Project, Role
from annotations.sample_data import cache_dir


def test_demo_builds_imports_and_is_idempotent(db, tmp_path, monkeypatch):
    monkeypatch.setenv("SPIDER_CACHE_DIR", str(tmp_path))
    call_command("demo", slides=2, stdout=io.StringIO())
    project = Project.objects.get(slug="demo")
    assert {m.user.username: m.role for m in project.memberships.select_related("user")} == {
        "demo": Role.ADMIN, "reviewer": Role.REVIEWER, "viewer": Role.VIEWER}
    planted = json.loads((cache_dir() / "demo-spider-2" / "planted_errors.json").read_text())
    assert planted
    for error in planted:
        patch = Patch.objects.get(project=project, image_name=error["image_name"])
        assert patch.original_label.name == error["given_class"] != error["true_class"]
    count = Patch.objects.filter(project=project).count()
    call_command("demo", slides=2, stdout=io.StringIO())
    assert Patch.objects.filter(project=project).count() == count
