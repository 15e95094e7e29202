"""The usage chart's SVG: a step line of the counts against a dashed owned line, axes with
the caller's formatting, a legend and a text alternative; one point or none still draws."""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET

import pytest

from satellite.console.chart import BOTTOM, TOP, ChartText, Point, usage_chart

pytestmark = pytest.mark.unit

SVG = "{http://www.w3.org/2000/svg}"
TEXT = ChartText(
    title="Usage of <Enhanced> & co",
    description="Latest: 7 of 10",
    used="Used",
    owned="Owned",
    empty="No reports",
)
T0 = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.UTC)


def draw(points: list[Point], owned: int) -> ET.Element:
    markup = usage_chart(
        points,
        owned,
        TEXT,
        chart_id="chart-1",
        date=lambda at: at.strftime("day %d %H:%M"),
        number=lambda n: f"n{n}",
    )
    assert "style" not in markup  # the CSP allows no inline style
    assert "<script" not in markup
    # well-formed XML, every text escaped (the test's own markup, not untrusted data)
    return ET.fromstring(str(markup))  # noqa: S314


def texts(svg: ET.Element) -> list[str]:
    return [t.text or "" for t in svg.iter(SVG + "text")]


def test_counts_over_time_against_what_is_owned() -> None:
    points = [
        Point(T0 + dt.timedelta(hours=2), 7),
        Point(T0, 3),
        Point(T0 + dt.timedelta(hours=1), 12),
    ]
    svg = draw(points, 10)
    assert svg.get("role") == "img"
    assert svg.get("aria-labelledby") == "chart-1-title chart-1-desc"
    assert svg.find(SVG + "title").text == "Usage of <Enhanced> & co"  # type: ignore[union-attr]
    assert svg.find(SVG + "desc").text == "Latest: 7 of 10"  # type: ignore[union-attr]
    labels = texts(svg)
    # The count axis goes past the largest count (12) in steps of 5; numbers as formatted.
    assert labels[:4] == ["n0", "n5", "n10", "n15"]
    # The time axis: the first and last reports (drawn oldest first, however given).
    assert "day 01 10:00" in labels
    assert "day 01 12:00" in labels
    assert labels[-2:] == ["Used", "Owned"]  # the legend
    [used] = [p for p in svg.iter(SVG + "path") if p.get("class") == "used"]
    assert used.get("stroke")
    assert used.get("fill") == "none"
    ys = [float(v) for v in re.findall(r"V([\d.]+)", used.get("d", ""))]
    assert ys[0] < ys[1]  # 12 is drawn above 7
    assert len(list(svg.iter(SVG + "circle"))) == 3
    [owned] = [line for line in svg.iter(SVG + "line") if line.get("class") == "owned"]
    assert owned.get("stroke-dasharray")
    # 10 of a 0..15 axis: two thirds up the plot.
    assert float(owned.get("y1", "")) == pytest.approx(BOTTOM - (BOTTOM - TOP) * 10 / 15, abs=0.1)


def test_one_report_is_a_point_in_the_middle_with_its_date() -> None:
    svg = draw([Point(T0, 4)], 0)
    [dot] = list(svg.iter(SVG + "circle"))
    assert float(dot.get("cx", "")) == pytest.approx((64 + 640 - 16) / 2)
    assert texts(svg).count("day 01 10:00") == 1
    assert texts(svg)[:5] == ["n0", "n1", "n2", "n3", "n4"]


def test_reports_closer_than_the_label_shows_have_one_date_in_the_middle() -> None:
    # Seconds apart: the points spread over the plot, the one date label is not at the
    # first point (the left edge, where half of it would be cut off).
    svg = draw([Point(T0, 2), Point(T0 + dt.timedelta(seconds=3), 5)], 8)
    [label] = [t for t in svg.iter(SVG + "text") if t.text == "day 01 10:00"]
    assert label.get("text-anchor") == "middle"
    assert float(label.get("x", "")) == pytest.approx((64 + 640 - 16) / 2)


def test_no_history_says_so_and_still_shows_what_is_owned() -> None:
    svg = draw([], 2)
    assert "No reports" in texts(svg)
    assert not list(svg.iter(SVG + "path"))
    assert [line for line in svg.iter(SVG + "line") if line.get("class") == "owned"]


def test_nothing_at_all_is_still_an_axis() -> None:
    svg = draw([Point(T0, 0)], 0)
    assert texts(svg)[:2] == ["n0", "n1"]  # never a zero-height axis
