"""Charts drawn on the server as inline SVG: no chart library, no script, no network.

Two shapes cover the dashboard: horizontal (stacked) bars, which keep long package names
readable on a phone, and a line of shares over days. Every mark carries `data-*` attributes
(what it shows, its value) and a `<title>` tooltip; each chart comes with its numbers as a
table for screen readers and for copying. Colours come from CSS classes (`s-<series>`), so
the page's stylesheet and the Content-Security-Policy (no inline styles) stay in charge.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

_ids = itertools.count(1)

WIDTH = 480
ROW = 30  # one bar's band
LABEL = 170  # room for the row labels, left of the bars


@dataclass(frozen=True, slots=True)
class Series:
    key: str  # css class s-<key>, data-series
    name: str  # legend text


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"
    return f"{text}{unit}"


def _short(label: str, limit: int = 22) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _legend(series: Sequence[Series]) -> str:
    if len(series) < 2:
        return ""
    items = "".join(
        f'<li><span class="swatch s-{escape(s.key)}"></span>{escape(s.name)}</li>' for s in series
    )
    return f'<ul class="legend">{items}</ul>'


def _table(
    title: str, head: Sequence[str], rows: Sequence[Sequence[str]], *, summary: str = "Numbers"
) -> str:
    ths = "".join(f'<th scope="col">{escape(h)}</th>' for h in head)
    trs = "".join(
        "<tr>"
        + f'<th scope="row">{escape(r[0])}</th>'
        + "".join(f"<td>{escape(c)}</td>" for c in r[1:])
        + "</tr>"
        for r in rows
    )
    return (
        f'<details class="chart-data"><summary>{escape(summary)}</summary>'
        f"<table><caption>{escape(title)}</caption><thead><tr>{ths}</tr></thead>"
        f"<tbody>{trs}</tbody></table></details>"
    )


def bar_chart(
    title: str,
    rows: Sequence[tuple[str, Sequence[float]]],
    series: Sequence[Series],
    *,
    unit: str = "",
    chart_id: str = "",
) -> Markup:
    """Horizontal bars, one per row, stacked by series (`values[i]` belongs to `series[i]`)."""
    cid = chart_id or f"chart{next(_ids)}"
    top = max((sum(values) for _, values in rows), default=0) or 1
    span = WIDTH - LABEL - 70  # leave room for the total after the bar
    height = ROW * len(rows) + 6
    marks: list[str] = []
    for i, (label, values) in enumerate(rows):
        y = 3 + i * ROW
        marks.append(
            f'<text class="label" x="{LABEL - 8}" y="{y + ROW / 2 + 4:.0f}" '
            f'text-anchor="end">{escape(_short(label))}<title>{escape(label)}</title></text>'
        )
        x = float(LABEL)
        for s, value in zip(series, values, strict=True):
            if value <= 0:
                continue
            w = max(span * value / top, 2.0)
            marks.append(
                f'<rect class="bar s-{escape(s.key)}" x="{x:.1f}" y="{y + 5}" width="{w:.1f}" '
                f'height="{ROW - 10}" rx="2" data-label="{escape(label)}" '
                f'data-series="{escape(s.key)}" data-value="{value:g}">'
                f"<title>{escape(label)} — {escape(s.name)}: {_fmt(value, unit)}</title></rect>"
            )
            x += w
        marks.append(
            f'<text class="total" x="{x + 6:.1f}" y="{y + ROW / 2 + 4:.0f}">'
            f"{_fmt(sum(values), unit)}</text>"
        )
    svg = (
        f'<svg class="chart bars" id="{cid}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{cid}-t" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{cid}-t">{escape(title)}</title>{"".join(marks)}</svg>'
    )
    head = ["", *(s.name for s in series)] + (["total"] if len(series) > 1 else [])
    table_rows = [
        [label, *(_fmt(v, unit) for v in values)]
        + ([_fmt(sum(values), unit)] if len(series) > 1 else [])
        for label, values in rows
    ]
    return Markup(_legend(series) + svg + _table(title, head, table_rows))


def line_chart(
    title: str,
    points: Sequence[tuple[dt.date, float]],
    *,
    series: Series,
    percent: bool = True,
    chart_id: str = "",
) -> Markup:
    """A line over days; `percent`: values are shares in 0..1, drawn on a 0-100 % axis."""
    cid = chart_id or f"chart{next(_ids)}"
    height, left, right, top_pad, bottom = 220, 44, 12, 12, 28
    plot_w, plot_h = WIDTH - left - right, height - top_pad - bottom
    top = 1.0 if percent else (max((v for _, v in points), default=0) or 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        x = left + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)
        return x, top_pad + plot_h * (1 - value / top)

    def show(value: float) -> str:
        return f"{value * 100:.0f}%" if percent else _fmt(value, "")

    parts: list[str] = []
    for frac in (0.0, 0.5, 1.0):  # grid lines and y labels
        y = top_pad + plot_h * (1 - frac)
        parts.append(f'<line class="grid" x1="{left}" x2="{WIDTH - right}" y1="{y}" y2="{y}"/>')
        parts.append(
            f'<text class="axis" x="{left - 6}" y="{y + 4}" text-anchor="end">'
            f"{show(frac * top)}</text>"
        )
    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    if coords:
        line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        base = top_pad + plot_h
        area = f"{coords[0][0]:.1f},{base} {line} {coords[-1][0]:.1f},{base}"
        parts.append(f'<polygon class="area s-{escape(series.key)}" points="{area}"/>')
        parts.append(f'<polyline class="line s-{escape(series.key)}" points="{line}"/>')
    for (day, value), (x, y) in zip(points, coords, strict=True):
        parts.append(
            f'<circle class="point s-{escape(series.key)}" cx="{x:.1f}" cy="{y:.1f}" r="3.5" '
            f'data-label="{day.isoformat()}" data-value="{value:.4f}">'
            f"<title>{day.isoformat()}: {show(value)} {escape(series.name)}</title></circle>"
        )
    ticks = sorted({0, len(points) // 2, len(points) - 1}) if points else []
    for i in ticks:
        x, _ = coords[i]
        last = len(points) - 1
        anchor = "middle" if last == 0 or 0 < i < last else ("start" if i == 0 else "end")
        parts.append(
            f'<text class="axis" x="{x:.1f}" y="{height - 8}" text-anchor="{anchor}">'
            f"{points[i][0].strftime('%b %d')}</text>"
        )
    svg = (
        f'<svg class="chart line-chart" id="{cid}" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'aria-labelledby="{cid}-t" preserveAspectRatio="xMinYMin meet">'
        f'<title id="{cid}-t">{escape(title)}</title>{"".join(parts)}</svg>'
    )
    rows = [[day.isoformat(), show(value)] for day, value in points]
    return Markup(svg + _table(title, ["day", series.name], rows))
