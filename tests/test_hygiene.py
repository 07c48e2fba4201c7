"""Project hygiene: a warning-free API schema, log lines written once, declared dependencies."""

from __future__ import annotations

import ast
import importlib.metadata
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from django.urls import reverse

ROOT = Path(__file__).resolve().parent.parent
OWN = {"annotations", "inference", "spider_web", "bench", "tests"}
RUNTIME_PACKAGES = ("annotations", "inference", "spider_web")  # need `dependencies`
DEV_PACKAGES = ("bench", "tests")  # may also use the `dev` extra


def test_api_schema_generates_without_warnings(tmp_path):
    """drf-spectacular names every enum without collisions and validates the schema."""
    out = tmp_path / "schema.yml"
    result = subprocess.run(
        [sys.executable, "manage.py", "spectacular", "--validate", "--fail-on-warn",
         "--file", str(out)],
        cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stderr, result.stderr
    schema = out.read_text()
    for name in ("PatchStatusEnum", "JobStatusEnum", "ReviewActionEnum", "InferenceJobKindEnum"):
        assert f"    {name}:" in schema, name
    # a collision drf-spectacular resolves itself is named by hash: "Status6d9Enum"
    assert not re.search(r"^    [A-Za-z]+[0-9A-F][0-9a-f]{2}Enum:", schema, re.M), schema


@pytest.fixture
def written(monkeypatch):
    """Every line the configured logging handlers would write (pytest's own left out)."""
    lines: list[str] = []
    handlers = set(logging.getLogger().handlers)
    for logger in logging.Logger.manager.loggerDict.values():
        if isinstance(logger, logging.Logger):
            handlers.update(logger.handlers)
    for handler in handlers:
        if type(handler).__module__.startswith("_pytest"):
            continue

        def emit(record, handler=handler):
            lines.append(handler.format(record))

        monkeypatch.setattr(handler, "emit", emit)
    return lines


@pytest.mark.parametrize("debug", [False, True])
def test_refused_page_logs_one_line_without_traceback(client, users, project, written,
                                                      settings, debug):
    settings.DEBUG = debug  # Django's default "django" handler printed only with DEBUG on
    client.force_login(users["viewer"])
    assert client.get(reverse("members", args=[project.slug])).status_code == 403
    forbidden = [line for line in written if "Forbidden" in line]
    assert len(forbidden) == 1, written
    assert "Traceback" not in forbidden[0] and "\n" not in forbidden[0], forbidden[0]
    assert "WARNING" in forbidden[0] and f"/p/{project.slug}/members/" in forbidden[0]


@pytest.mark.django_db
def test_refused_api_call_logs_one_line(client, written):
    assert client.get("/api/projects/").status_code in (401, 403)  # not logged in
    refused = [line for line in written if "/api/projects/" in line]
    assert len(refused) == 1, written
    assert "Traceback" not in refused[0] and "\n" not in refused[0], refused[0]


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], set[str]]:
    """(distributions in `dependencies`, those in the `dev` extra), normalised names."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {_normalise(re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", r).group())
                for r in requirements}

    return names(project["dependencies"]), names(project["optional-dependencies"]["dev"])


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _third_party_imports(folder: str, *, typing_only: bool = False) -> dict[str, set[str]]:
    """Top-level modules imported by ``folder``'s files (not stdlib, not ours) -> files: those
    imported at run time, or with ``typing_only`` those under ``if TYPE_CHECKING:``."""
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        checking = {id(n) for block in ast.walk(tree) if _is_type_checking(block)
                    for n in ast.walk(block)}
        for node in ast.walk(tree):
            if (id(node) in checking) != typing_only:
                continue
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                # _typeshed exists only for type checkers (typeshed's stdlib helpers)
                if (top in sys.stdlib_module_names or top in OWN
                        or top in ("__future__", "_typeshed")):
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_third_party_import_is_declared():
    runtime, dev = _declared()
    distributions = importlib.metadata.packages_distributions()
    problems = []
    checks = [(RUNTIME_PACKAGES, False, runtime, "dependencies"),
              (DEV_PACKAGES, False, runtime | dev, "dependencies or dev"),
              # imports for the type checker only (stubs, django_stubs_ext) may be dev tools
              (RUNTIME_PACKAGES + DEV_PACKAGES, True, runtime | dev, "dependencies or dev")]
    for folders, typing_only, allowed, where in checks:
        for folder in folders:
            imports = _third_party_imports(folder, typing_only=typing_only)
            for module, files in sorted(imports.items()):
                provided_by = {_normalise(d) for d in distributions.get(module, [])}
                if not provided_by:
                    problems.append(f"{module} (imported by {min(files)}): not installed")
                elif not provided_by & allowed:
                    problems.append(f"{module} (imported by {min(files)}): "
                                    f"declare {'/'.join(sorted(provided_by))} in {where}")
    assert not problems, "\n".join(problems)
