"""The active model's plots on its test split: confusion matrix and per-class F1
(registered in :mod:`annotations.plots`; drawn in the models panel)."""

from __future__ import annotations

from annotations.models import Project
from annotations.plots import TEAL, Plot, bars, heatmap, register_plot
from inference.queries import active_version


def _evaluated(metrics: dict) -> str:
    n, on = metrics.get("n"), metrics.get("evaluated_on")
    return f" ({n} {on} patches)" if n is not None and on else ""


def confusion_plot(project: Project) -> Plot | None:
    version = active_version(project)
    metrics = (version.metrics or {}) if version else {}
    matrix = metrics.get("confusion_matrix")
    if version is None or not matrix:
        return None
    names = list(version.class_names)[: len(matrix)]
    return heatmap("confusion", f"Confusion matrix of {version.name}{_evaluated(metrics)}",
                   names, names, matrix, "true label", "predicted label")


def class_f1_plot(project: Project) -> Plot | None:
    version = active_version(project)
    metrics = (version.metrics or {}) if version else {}
    f1 = metrics.get("per_class_f1")
    if version is None or not f1:
        return None
    if isinstance(f1, dict):
        names = [n for n in version.class_names if n in f1] or list(f1)
        values = [float(f1[n]) for n in names]
    else:
        names, values = list(version.class_names)[: len(f1)], [float(v) for v in f1]
    return bars("class_f1", f"Per-class F1 of {version.name}{_evaluated(metrics)}", names,
                [("F1", values, TEAL)], top=1.0, fmt=lambda v: f"{v:.2f}")


def register_plots() -> None:
    register_plot("confusion", confusion_plot)
    register_plot("class_f1", class_f1_plot)
