"""The import's file-check processes: light, and their death is an error that names them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from annotations.importing import checkers, import_spider
from annotations.models import Patch

ROOT = Path(__file__).resolve().parent.parent


def test_a_file_check_process_loads_neither_django_nor_pillow():
    """It is started once per core for every import: it must start in milliseconds, not set
    up the project (Pillow is loaded only for a file that is not a PNG)."""
    script = ("import sys, annotations.importing.filecheck; import json; "
              "print(json.dumps(sorted(m for m in sys.modules if m == 'annotations.models' "
              "or m.split('.')[0] in ('django', 'PIL', 'numpy', 'torch'))))")
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == []


@pytest.mark.django_db
def test_a_killed_file_check_process_fails_the_import_and_a_rerun_completes(
        project, spider_copy, settings, monkeypatch):
    settings.SPIDER_IMPORT_BATCH = 4  # several batches, each its own transaction
    settings.SPIDER_IMPORT_WORKERS = 1
    records = len(json.loads((spider_copy / "metadata.json").read_text()))
    submit = checkers._Checker.submit
    calls = []

    def killing_submit(self, names):
        calls.append(len(names))
        if len(calls) == 6:  # as if the kernel's OOM killer took it mid-import
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        return submit(self, names)

    monkeypatch.setattr(checkers._Checker, "submit", killing_submit)
    with pytest.raises(checkers.CheckerGone, match=r"file-check process .* ended "
                                                   r"unexpectedly \(exit code -9\)"):
        import_spider(project, spider_copy, link=True)
    kept = Patch.objects.filter(project=project).count()
    assert 0 < kept < records  # whole batches before the death stay, as after any crash

    monkeypatch.setattr(checkers._Checker, "submit", submit)
    report = import_spider(project, spider_copy, link=True)
    assert report.patches_existing == kept and report.skipped == []
    assert Patch.objects.filter(project=project).count() == records
