"""The embedded default (no DATABASE_URL, no REDIS_URL): SQLite and in-process tasks work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_manage(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)


def test_sqlite_default_migrates_imports_and_serves(sample_spider, tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in {"DATABASE_URL", "REDIS_URL", "SECRET_KEY"}}
    db = tmp_path / "embedded.sqlite3"
    env.update(DEBUG="1", MEDIA_ROOT=str(tmp_path / "media"),
               DATABASE_URL=f"sqlite:///{db}")  # the default, pointed into tmp
    run_manage(["migrate", "--no-input", "-v", "0"], env)
    result = run_manage(["import_spider", str(sample_spider), "--project", "p", "--json"], env)
    report = json.loads(result.stdout)
    assert report["patches_created"] > 0 and report["skipped"] == []
    check = run_manage(["shell", "-v", "0", "-c",
                        "from django.conf import settings; "
                        "from annotations.models import Patch; "
                        "print(settings.DATABASES['default']['ENGINE'], "
                        "settings.CELERY_TASK_ALWAYS_EAGER, Patch.objects.count())"], env)
    engine, eager, count = check.stdout.split()
    assert engine.endswith("sqlite3") and eager == "True"
    assert int(count) == report["patches_created"]


def test_settings_default_to_sqlite_without_database_url():
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["DEBUG"] = "1"
    out = run_manage(["shell", "-v", "0", "-c", "from django.conf import settings; "
                      "print(settings.DATABASES['default']['NAME'])"], env)
    assert out.stdout.strip() == str(ROOT / "db.sqlite3")


def test_production_refuses_to_start_without_secret_key():
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG"}}
    result = subprocess.run([sys.executable, str(ROOT / "manage.py"), "check"], env=env,
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "SECRET_KEY must be set" in result.stderr
