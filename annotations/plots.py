"""Small server-rendered SVG plots (no chart library, no JavaScript needed to see them).

Each builder turns plain numbers into a :class:`Plot`: a standalone SVG document whose
``<title>`` names the plot and whose ``<desc>`` carries the numbers in words, so a screen
reader, a text search or a test reads what the picture shows. Every piece of text that
comes from data (class names, dates) is escaped here.

Plots are registered by name (:func:`register_plot`, like the project page's panels), so
an app built on this one (inference: the model's confusion matrix) adds its own without
this app importing it; the project page shows them inline and
``/p/<slug>/plots/<name>.svg`` serves each as a download.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import TYPE_CHECKING

from django.utils.safestring import SafeString, mark_safe

if TYPE_CHECKING:
    from annotations.models import Project

FONT = "system-ui, -apple-system, 'Segoe UI', sans-serif"
INK, MUTED, GRID = "#1d2330", "#667085", "#e3e6ec"
TEAL, RED, PURPLE = "#0b7a75", "#b42318", "#5b3c88"


@dataclass(frozen=True)
class Plot:
    name: str  # in URLs and file names: [a-z_]+
    title: str
    desc: str  # the numbers shown, in words
    svg: str  # a standalone SVG document

    @property
    def inline(self) -> SafeString:
        """For templates: the SVG is built from escaped text only."""
        return mark_safe(self.svg)


def _t(text: object) -> str:
    return escape(str(text), quote=False)


def _a(text: object) -> str:
    return escape(str(text), quote=True)


def _n(x: float) -> str:
    return f"{x:.1f}".rstrip("0").rstrip(".")


ISO_DATE = re.compile(r"\d{4}-\d\d-\d\d")


def _short(name: str, limit: int = 26) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def document(name: str, width: float, height: float, title: str, desc: str,
             body: Sequence[str]) -> Plot:
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot-svg" role="img" '
           f'width="{_n(width)}" height="{_n(height)}" viewBox="0 0 {_n(width)} {_n(height)}" '
           f'aria-labelledby="{name}-title {name}-desc" font-family="{_a(FONT)}" '
           f'font-size="12" data-plot="{name}">'
           f'<title id="{name}-title">{_t(title)}</title>'
           f'<desc id="{name}-desc">{_t(desc)}</desc>'
           f'<rect width="100%" height="100%" fill="#fff"/>{"".join(body)}</svg>')
    return Plot(name, title, desc, svg)


def _text(x: float, y: float, text: object, anchor: str = "start", size: int = 12,
          fill: str = INK, extra: str = "") -> str:
    return (f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{fill}"{extra}>{_t(text)}</text>')


def _ticks(top: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least ``top``."""
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(top / step - 1e-9) + 1)]


def heatmap(name: str, title: str, rows: Sequence[str], cols: Sequence[str],
            matrix: Sequence[Sequence[float]], row_axis: str, col_axis: str) -> Plot:
    """A shaded count matrix: the diagonal (agreement) in teal, the rest (changes) in red,
    each shaded by the square root of its count against the largest of its kind."""
    n_rows, n_cols = len(rows), len(cols)
    cell = 34 if max(n_rows, n_cols) <= 8 else 26 if max(n_rows, n_cols) <= 16 else 22
    left = 12 + 6.6 * max((len(_short(r)) for r in rows), default=4)
    top = 30 + 5.2 * max((len(_short(c)) for c in cols), default=4)
    footer = f"rows: {row_axis} · columns: {col_axis} · teal: same class, red: changed"
    width = max(left + n_cols * cell + 20, 24 + 6.2 * len(footer))
    height = top + n_rows * cell + 34
    diagonal = max((matrix[i][i] for i in range(min(n_rows, n_cols))), default=0) or 1
    off = max((v for i, r in enumerate(matrix) for j, v in enumerate(r) if i != j),
              default=0) or 1
    body = [_text(left + n_cols * cell / 2, 16, col_axis, "middle", 12, MUTED)]
    cells, changes = [], []
    for i, row in enumerate(matrix):
        y = top + i * cell
        body.append(_text(left - 6, y + cell / 2 + 4, _short(rows[i]), "end", 11))
        for j, value in enumerate(row):
            x = left + j * cell
            colour, scale = (TEAL, diagonal) if i == j else (RED, off)
            shade = math.sqrt(value / scale) if value else 0
            label = f"{rows[i]} → {cols[j]}: {_n(value)}"
            cells.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="{cell - 1}" height="{cell - 1}" '
                         f'fill="{colour if value else "#f4f5f8"}" '
                         f'fill-opacity="{0.12 + 0.88 * shade if value else 1:.2f}">'
                         f'<title>{_t(label)}</title>'
                         f'</rect>')
            if value:
                text_fill = "#fff" if shade > 0.55 else INK
                cells.append(_text(x + (cell - 1) / 2, y + cell / 2 + 4, _n(value), "middle",
                                   10 if cell < 30 else 11, text_fill,
                                   ' pointer-events="none"'))
                if i != j:
                    changes.append(label)
    for j, col in enumerate(cols):
        x = left + j * cell + cell / 2
        body.append(_text(x, top - 6, _short(col), "start", 11, INK,
                          f' transform="rotate(-60 {_n(x)} {_n(top - 6)})"'))
    body += cells
    body.append(_text(12, height - 12, footer, "start", 11, MUTED))
    total = sum(sum(r) for r in matrix)
    same = sum(matrix[i][i] for i in range(min(n_rows, n_cols)))
    desc = (f"Rows: {row_axis}; columns: {col_axis}. {_n(total)} in all, {_n(same)} on the "
            f"diagonal, {_n(total - same)} off it. "
            + ("Off the diagonal: " + "; ".join(changes) + "." if changes
               else "Nothing off the diagonal."))
    return document(name, width, height, title, desc, body)


def bars(name: str, title: str, categories: Sequence[str],
         series: Sequence[tuple[str, Sequence[float], str]], top: float | None = None,
         fmt: Callable[[float], str] = _n) -> Plot:
    """Horizontal bars, one group per category and one bar per series (name, values,
    colour); ``top`` fixes the axis end (1 for F1)."""
    per = len(series)
    bar, gap = 9, 7
    group = per * bar + gap
    left = 12 + 6.6 * max((len(_short(c)) for c in categories), default=4)
    plot_w = 360
    head = 22 if per > 1 else 8
    width = left + plot_w + 60
    height = head + len(categories) * group + 34
    largest = max((v for _, values, _ in series for v in values), default=0)
    ticks = _ticks(top if top is not None else largest)
    end = ticks[-1] or 1
    body = []
    for k, (label, _, colour) in enumerate(series if per > 1 else []):
        x = left + k * 120
        body.append(f'<rect x="{_n(x)}" y="6" width="10" height="10" fill="{colour}"/>')
        body.append(_text(x + 14, 15, label, "start", 11))
    axis_y = head + len(categories) * group
    for tick in ticks:
        x = left + plot_w * tick / end
        body.append(f'<line x1="{_n(x)}" x2="{_n(x)}" y1="{head - 2}" y2="{_n(axis_y)}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(x, axis_y + 14, fmt(tick), "middle", 10, MUTED))
    words = []
    for i, category in enumerate(categories):
        y0 = head + i * group
        body.append(_text(left - 6, y0 + per * bar / 2 + 4, _short(category), "end", 11))
        parts = []
        for k, (label, values, colour) in enumerate(series):
            value = values[i]
            w = plot_w * value / end
            y = y0 + k * bar
            tip = f"{category}, {label}: {fmt(value)}" if per > 1 else f"{category}: {fmt(value)}"
            body.append(f'<rect x="{_n(left)}" y="{_n(y)}" width="{_n(max(w, 0.5))}" '
                        f'height="{bar - 1}" fill="{colour}"><title>{_t(tip)}</title></rect>')
            body.append(_text(left + w + 3, y + bar - 1.5, fmt(value), "start", 9, MUTED))
            parts.append(f"{label} {fmt(value)}" if per > 1 else fmt(value))
        words.append(f"{category}: {', '.join(parts)}")
    return document(name, width, height, title, "; ".join(words) + ".", body)


def _x_labels(days: Sequence[str], x_of: Callable[[int], float], y: float) -> list[str]:
    """Labels under the columns: a date without its year (a run of days), any other name
    (a model version, on the rounds page) whole or shortened at its end, never cut at its
    start ("demo-head" was drawn as "head")."""
    every = max(1, math.ceil(len(days) / 8))
    return [_text(x_of(i), y, _x_label(day, len(days)), "middle", 10, MUTED)
            for i, day in enumerate(days) if i % every == 0 or i == len(days) - 1]


def _x_label(day: str, count: int) -> str:
    if ISO_DATE.fullmatch(day):
        return day[5:] if count > 1 else day
    return _short(day, 18)


def stacked_columns(name: str, title: str, days: Sequence[str],
                    series: Sequence[tuple[str, Sequence[int], str]]) -> Plot:
    """Columns per day, stacked by series (name, counts, colour)."""
    left, head, plot_w, plot_h = 44, 24, 520, 160
    width, height = left + plot_w + 16, head + plot_h + 30
    totals = [sum(values[i] for _, values, _ in series) for i in range(len(days))]
    ticks = _ticks(max(totals, default=0))
    end = ticks[-1] or 1
    step = plot_w / max(1, len(days))
    col = max(1.0, min(36.0, step * 0.75))
    body = []
    for k, (label, _, colour) in enumerate(series):
        x = left + k * 90
        body.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{colour}"/>')
        body.append(_text(x + 14, 15, label, "start", 11))
    base = head + plot_h
    for tick in ticks:
        y = base - plot_h * tick / end
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(left - 5, y + 4, _n(tick), "end", 10, MUTED))

    def x_of(i: int) -> float:
        return left + step * i + step / 2

    words = []
    for i, day in enumerate(days):
        y = base
        parts = []
        for label, values, colour in series:
            value = values[i]
            if value:
                h = plot_h * value / end
                y -= h
                body.append(f'<rect x="{_n(x_of(i) - col / 2)}" y="{_n(y)}" width="{_n(col)}" '
                            f'height="{_n(h)}" fill="{colour}"><title>{_t(day)}, {_t(label)}: '
                            f'{value}</title></rect>')
                parts.append(f"{value} {label}")
        words.append(f"{day}: {totals[i]} ({', '.join(parts) or 'none'})")
    body += _x_labels(days, x_of, base + 14)
    return document(name, width, height, title, "; ".join(words) + ".", body)


def rate_line(name: str, title: str, days: Sequence[str], rates: Sequence[float],
              lows: Sequence[float], highs: Sequence[float], notes: Sequence[str]) -> Plot:
    """A rate (0..1) per day as a line over its shaded confidence band, as percentages."""
    left, head, plot_w, plot_h = 44, 24, 520, 160
    width, height = left + plot_w + 16, head + plot_h + 30
    ticks = _ticks(max(highs, default=0) * 100 or 10)
    end = ticks[-1] or 1
    base = head + plot_h
    step = plot_w / max(1, len(days))

    def x_of(i: int) -> float:
        return left + step * i + step / 2

    def y_of(rate: float) -> float:
        return base - plot_h * rate * 100 / end

    body = [f'<rect x="{left}" y="6" width="10" height="10" fill="{PURPLE}" fill-opacity=".18"/>',
            _text(left + 14, 15, "95% interval", "start", 11),
            f'<line x1="{left + 110}" x2="{left + 124}" y1="11" y2="11" stroke="{PURPLE}" '
            f'stroke-width="2"/>', _text(left + 128, 15, "estimated error rate", "start", 11)]
    for tick in ticks:
        y = base - plot_h * tick / end
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{_n(y)}" y2="{_n(y)}" '
                    f'stroke="{GRID}"/>')
        body.append(_text(left - 5, y + 4, f"{_n(tick)}%", "end", 10, MUTED))
    if days:
        upper = [f"{_n(x_of(i))},{_n(y_of(h))}" for i, h in enumerate(highs)]
        lower = [f"{_n(x_of(i))},{_n(y_of(lo))}" for i, lo in reversed(list(enumerate(lows)))]
        body.append(f'<polygon points="{" ".join(upper + lower)}" fill="{PURPLE}" '
                    f'fill-opacity=".18"/>')
        line = " ".join(f"{_n(x_of(i))},{_n(y_of(r))}" for i, r in enumerate(rates))
        body.append(f'<polyline points="{line}" fill="none" stroke="{PURPLE}" '
                    f'stroke-width="2"/>')
        for i, rate in enumerate(rates):
            body.append(f'<circle cx="{_n(x_of(i))}" cy="{_n(y_of(rate))}" r="3" '
                        f'fill="{PURPLE}"><title>{_t(days[i])}: {_t(notes[i])}</title></circle>')
    body += _x_labels(days, x_of, base + 14)
    desc = "; ".join(f"{day}: {note}" for day, note in zip(days, notes, strict=True))
    return document(name, width, height, title, desc + ".", body)


# --- The registry ------------------------------------------------------------------------

PlotBuilder = Callable[["Project"], "Plot | None"]
BUILDERS: dict[str, PlotBuilder] = {}


def register_plot(name: str, builder: PlotBuilder) -> None:
    BUILDERS.setdefault(name, builder)


def build(project: Project, name: str) -> Plot | None:
    """Plot ``name`` of ``project`` (None: unknown, or no data to draw yet)."""
    builder = BUILDERS.get(name)
    return builder(project) if builder else None


def plots_context(project: Project) -> dict[str, Plot]:
    """Every registered plot that has data, by name, for the project page's templates."""
    found = {name: build(project, name) for name in BUILDERS}
    return {name: plot for name, plot in found.items() if plot is not None}
