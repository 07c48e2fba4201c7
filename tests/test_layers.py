"""The project's structure: imports flow one way, and the web tier never loads torch.

Both tests read the code or run it in a fresh interpreter, so a new import anywhere that
breaks a rule fails here, naming the module and the edge.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("annotations", "inference", "spider_web")
HEAVY = ("torch", "timm", "datasets", "pyarrow", "cleanlab", "sklearn", "pandas")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """Project modules ``module`` imports, at module level or inside functions (a lazy
    import is still a dependency), but not under ``if TYPE_CHECKING``."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if (target := resolve(alias.name)) is not None:
                        found.add(target)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    target = resolve(f"{base}.{alias.name}") or resolve(base)
                    if target is not None:
                        found.add(target)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def forbidden(source: str, target: str) -> str | None:
    """Why the edge source -> target breaks the layering, or None."""
    if source.startswith("annotations") and target.startswith("inference") \
            and target != "inference.queries":
        return "annotations may import only inference.queries of inference"
    if source.startswith("inference.modeling") and not target.startswith("inference.modeling"):
        return "inference.modeling is pure torch: it imports nothing of the project"
    if (target.endswith(".tasks") and not source.endswith((".tasks", ".actions"))
            and source != "spider_web.celery"):
        return "only actions enqueue tasks: executors never import them"
    if not source.startswith("spider_web") and target.startswith("spider_web") \
            and target not in ("spider_web.env", "spider_web.logging"):
        return "the apps never import what composes them (spider_web)"
    return None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycles_and_no_forbidden_edges():
    graph = import_graph()
    assert len(graph) > 50, "the walker found too few modules to be reading the project"
    assert "inference.queries" in graph["annotations.queues"], "the walker misses imports"
    bad = sorted(f"{s} -> {t}: {why}" for s, targets in graph.items() for t in targets
                 if (why := forbidden(s, t)))
    assert bad == [], "\n".join(bad)
    assert cycles(graph) == []


def test_the_walker_sees_a_cycle_and_a_forbidden_edge():
    """The checks above can fail: a made-up graph with both faults is caught."""
    graph = {"annotations.views": {"inference.views"}, "inference.views": {"annotations.views"}}
    assert cycles(graph) == [["annotations.views", "inference.views"]]
    assert forbidden("annotations.views", "inference.views")
    assert forbidden("inference.jobs", "inference.tasks")
    assert forbidden("inference.modeling.train", "inference.models")
    assert forbidden("annotations.views", "inference.queries") is None


def test_modeling_imports_no_django():
    """inference.modeling runs without Django (a GPU box, a notebook): no django import."""
    for path in (ROOT / "inference" / "modeling").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                     [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "django" for n in names), path


WEB_TIER_SCRIPT = """
import json, sys
import django
django.setup()
from django.core.management import call_command, load_command_class
from django.urls import get_resolver
import spider_web.urls

def views(resolver):
    for pattern in resolver.url_patterns:
        if hasattr(pattern, "url_patterns"):
            yield from views(pattern)
        else:
            yield pattern.callback

list(views(get_resolver()))
call_command("check")
import django.contrib.admin
django.contrib.admin.site.get_urls()
for app, name in [("annotations", "import_spider"), ("annotations", "import_folder"),
                  ("annotations", "export_spider"), ("annotations", "export_csv"),
                  ("inference", "predict"), ("inference", "train_head"),
                  ("spider_web", "demo")]:
    load_command_class(app, name)
from drf_spectacular.generators import SchemaGenerator
SchemaGenerator().get_schema(request=None, public=True)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in %r)))
"""


def test_web_tier_never_loads_torch_timm_datasets_pyarrow_or_cleanlab():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "spider_web.settings"}
    done = subprocess.run([sys.executable, "-c", WEB_TIER_SCRIPT % (HEAVY,)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert loaded == [], f"the web tier loaded {loaded}"


def test_the_web_tier_check_sees_torch_when_it_is_loaded():
    """The check above can fail: importing the embedding module does load torch."""
    script = WEB_TIER_SCRIPT.replace("import spider_web.urls",
                                     "import spider_web.urls, inference.embedding")
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "spider_web.settings"}
    done = subprocess.run([sys.executable, "-c", script % (HEAVY,)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torch" in json.loads(done.stdout.strip().splitlines()[-1])
