"""Server-drawn SVG charts: marks carry their values, labels are escaped, sizes add up."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

from graft.web import charts

A, B = charts.Series("critical", "critical"), charts.Series("high", "high")
SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markup: str) -> ET.Element:
    found = re.search(r"<svg.*?</svg>", markup, re.S)
    assert found
    return ET.fromstring(
        found.group(0).replace("<svg ", '<svg xmlns="http://www.w3.org/2000/svg" ', 1)
    )


def test_stacked_bars_are_proportional_and_carry_their_values() -> None:
    out = charts.bar_chart("t", [("PyPI", (2, 6)), ("npm", (0, 4))], [A, B], chart_id="c")
    rects = svg_of(out).findall(f"{SVG}rect")
    got = {(r.get("data-label"), r.get("data-series")): r for r in rects}
    assert set(got) == {("PyPI", "critical"), ("PyPI", "high"), ("npm", "high")}  # no 0 bar
    widths = {k: float(r.get("width") or 0) for k, r in got.items()}
    assert widths[("PyPI", "high")] == widths[("PyPI", "critical")] * 3
    assert widths[("npm", "high")] * 2 == widths[("PyPI", "critical")] + widths[("PyPI", "high")]
    assert got[("PyPI", "high")].get("data-value") == "6"
    assert "<td>8</td>" in out  # the totals in the numbers table


def test_labels_are_escaped() -> None:
    out = charts.bar_chart("<t>", [('<script>"x"</script>', (1,))], [A])
    assert "<script>" not in out and "&lt;script&gt;" in out
    svg_of(out)  # still well-formed XML


def test_line_chart_plots_shares_on_a_percent_axis() -> None:
    days = [dt.date(2026, 5, d) for d in (1, 2, 3)]
    out = charts.line_chart("s", list(zip(days, (0.0, 0.5, 1.0), strict=True)), series=A)
    points = svg_of(out).findall(f"{SVG}circle")
    ys = [float(p.get("cy") or 0) for p in points]
    assert ys[0] > ys[1] > ys[2]  # higher share, higher on the page
    assert ys[0] - ys[1] == ys[1] - ys[2]
    assert [p.get("data-label") for p in points] == [d.isoformat() for d in days]
    assert "100%" in out and "50%" in out


def test_empty_and_single_point_charts_render() -> None:
    assert "<svg" in charts.bar_chart("t", [], [A])
    out = charts.line_chart("s", [(dt.date(2026, 5, 1), 0.25)], series=A)
    assert len(svg_of(out).findall(f"{SVG}circle")) == 1
