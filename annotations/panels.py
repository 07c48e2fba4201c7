"""Sections other apps add to the project page, registered by the app that owns them.

The project page (annotations) must not import the apps built on it; each of those
registers a template and a context function here from its ``AppConfig.ready``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from annotations.models import Project


@dataclass(frozen=True)
class Panel:
    template: str
    context: Callable[[Project, Any], dict[str, Any]]  # (project, user) -> template context
    order: int = 50  # after the review summary (10), before imports (80) and exports (90)


PANELS: list[Panel] = []


def register_panel(template: str, context: Callable[[Project, Any], dict[str, Any]],
                   order: int = 50) -> None:
    if not any(p.template == template for p in PANELS):
        PANELS.append(Panel(template, context, order))
        PANELS.sort(key=lambda p: p.order)


def panels_context(project: Project, user) -> dict[str, Any]:
    """The registered panels' templates (in order) and their merged context; a panel says
    ``jobs_active`` when its jobs are live, so the page refreshes itself."""
    context: dict[str, Any] = {"panel_templates": [p.template for p in PANELS]}
    active = False
    for panel in PANELS:
        values = panel.context(project, user)
        active = active or bool(values.pop("jobs_active", False))
        context.update(values)
    context["panels_active"] = active
    return context
