"""The demo command: users, a real-tissue project imported as user data, planted errors."""

from __future__ import annotations

import io
import json
import re

import pytest
from django.core.management import call_command

from annotations.management.commands.demo import planted_in_top
from annotations.models import Patch, Project, Role
from annotations.sample_data import cache_dir
from inference.models import ModelVersion


@pytest.mark.django_db(transaction=True)
def test_demo_builds_imports_trains_and_is_idempotent(tmp_path, monkeypatch, eager):
    monkeypatch.setenv("SPIDER_CACHE_DIR", str(tmp_path))
    out = io.StringIO()
    call_command("demo", slides=4, stdout=out, stderr=io.StringIO())
    project = Project.objects.get(slug="demo")
    assert {m.user.username: m.role for m in project.memberships.select_related("user")} == {
        "demo": Role.ADMIN, "reviewer": Role.REVIEWER, "viewer": Role.VIEWER}
    planted = json.loads((cache_dir() / "demo-spider-4" / "planted_errors.json").read_text())
    assert planted
    for error in planted:
        patch = Patch.objects.get(project=project, image_name=error["image_name"])
        assert patch.original_label.name == error["given_class"] != error["true_class"]
    version = ModelVersion.objects.get(project=project)
    assert version.is_active and version.metrics["evaluated_on"] == "test"
    found = int(re.search(r"top (\d+) of the disagreement queue: (\d+)", out.getvalue())[2])
    assert found == planted_in_top(project, cache_dir() / "demo-spider-4", version, 20)[0]
    patches = Patch.objects.filter(project=project).count()
    # Better than chance: the ranking beats the planted errors' base rate in its top 20.
    assert found / 20 > len(planted) / patches

    count = Patch.objects.filter(project=project).count()
    call_command("demo", slides=4, stdout=io.StringIO(), stderr=io.StringIO())
    assert Patch.objects.filter(project=project).count() == count
    assert ModelVersion.objects.filter(project=project).count() == 1  # not retrained
