"""The model's plots (registered in :mod:`annotations.plots`): the active version's
confusion matrix and per-class F1 on its test split and its confident-learning estimate
(drawn in the models panel), and the retraining rounds' history (the rounds page)."""

from __future__ import annotations

from annotations.models import Project
from annotations.plots import (
    MUTED,
    PURPLE,
    RED,
    TEAL,
    Plot,
    bars,
    heatmap,
    rate_line,
    register_plot,
    stacked_columns,
)
from inference.history import RoundRow, rounds
from inference.models import ModelVersion
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




# --- Confident learning (the active version's out-of-fold estimate) -----------------------

def _learned(project: Project) -> tuple[ModelVersion, dict] | None:
    version = active_version(project)
    learned = ((version.metrics or {}).get("confident_learning") if version else None)
    return (version, learned) if version is not None and learned else None


def label_errors_plot(project: Project) -> Plot | None:
    found = _learned(project)
    if found is None:
        return None
    version, learned = found
    errors = learned["estimated_errors"]
    names = [n for n in version.class_names if n in errors]
    return bars("label_errors", f"Estimated wrong labels per class (confident learning, "
                f"{version.name}, {learned['patches']} train patches)", names,
                [("estimated wrong labels", [float(errors[n]) for n in names], RED)],
                fmt=lambda v: f"{v:.0f}")


def noise_matrix_plot(project: Project) -> Plot | None:
    found = _learned(project)
    if found is None:
        return None
    version, learned = found
    names = list(version.class_names)
    percent = [[round(100 * v, 1) for v in row] for row in learned["noise_matrix"]]
    return heatmap("noise_matrix", f"Noise matrix, % of each true class given each label "
                   f"(confident learning, {version.name})", names, names, percent,
                   "given label", "true class (estimated)")


# --- The rounds' history ---------------------------------------------------------------------

def _history(project: Project) -> list[RoundRow]:
    """The rounds with metrics, read once per Project object (the page draws five plots)."""
    cached: list[RoundRow] | None = getattr(project, "_rounds_history", None)
    if cached is None:
        cached = [r for r in rounds(project) if r.accuracy is not None]
        project._rounds_history = cached  # type: ignore[attr-defined]
    return cached


def round_metrics_plot(project: Project) -> Plot | None:
    rows = _history(project)
    if not rows:
        return None
    return bars("round_metrics", "Test metrics per model version (oldest first)",
                [r.version for r in rows],
                [("accuracy", [r.accuracy or 0.0 for r in rows], TEAL),
                 ("balanced accuracy", [r.balanced_accuracy or 0.0 for r in rows], PURPLE),
                 ("weighted F1", [r.weighted_f1 or 0.0 for r in rows], MUTED)],
                top=1.0, fmt=lambda v: f"{v:.3f}")


def round_audit_plot(project: Project) -> Plot | None:
    rows = [r for r in _history(project) if r.audit_rate is not None]
    if not rows:
        return None
    return rate_line("round_audit", "Audit sample's label error rate when each version was "
                     "trained", [r.version for r in rows], [r.audit_rate or 0.0 for r in rows],
                     [r.audit_low or 0.0 for r in rows], [r.audit_high or 0.0 for r in rows],
                     [f"{100 * (r.audit_rate or 0):.1f}% ({100 * (r.audit_low or 0):.1f}-"
                      f"{100 * (r.audit_high or 0):.1f}%)" for r in rows])


def round_remaining_plot(project: Project) -> Plot | None:
    rows = [r for r in _history(project) if r.remaining_errors]
    if not rows:
        return None
    names = list(dict.fromkeys(n for r in rows for n in r.remaining_errors))
    # Each class in its own colour, as on every other page (a class since removed or
    # renamed falls back to the palette).
    colour_of = dict(project.classes.values_list("name", "colour"))
    palette = [RED, PURPLE, TEAL, MUTED, "#f79009", "#2e90fa", "#12b76a", "#ee46bc"]
    return stacked_columns("round_remaining", "Estimated wrong labels left per class, per "
                           "version (confident learning)", [r.version for r in rows],
                           [(n, [r.remaining_errors.get(n, 0) for r in rows],
                             colour_of.get(n, palette[i % len(palette)]))
                            for i, n in enumerate(names)])


def round_queue_plot(project: Project) -> Plot | None:
    rows = [r for r in _history(project) if r.queue_shown]
    if not rows:
        return None
    return bars("round_queue", "Disagreement queue's precision: share of its items that "
                "reviewers corrected, per version", [r.version for r in rows],
                [("corrected / decided", [r.queue_precision or 0.0 for r in rows], RED)],
                top=1.0, fmt=lambda v: f"{v:.2f}")


def round_pace_plot(project: Project) -> Plot | None:
    rows = [r for r in _history(project) if r.decisions_per_hour]
    if not rows:
        return None
    return bars("round_pace", "Decisions per hour of review time, per version shown",
                [r.version for r in rows],
                [("decisions per hour", [r.decisions_per_hour or 0.0 for r in rows], TEAL)],
                fmt=lambda v: f"{v:.0f}")


HISTORY_PLOTS = ("round_metrics", "round_audit", "round_remaining", "round_queue",
                 "round_pace")


def register_plots() -> None:
    register_plot("confusion", confusion_plot)
    register_plot("class_f1", class_f1_plot)
    register_plot("label_errors", label_errors_plot)
    register_plot("noise_matrix", noise_matrix_plot)
    for name, builder in zip(HISTORY_PLOTS, (round_metrics_plot, round_audit_plot,
                                              round_remaining_plot, round_queue_plot,
                                              round_pace_plot), strict=True):
        register_plot(name, builder)
