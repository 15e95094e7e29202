"""A usage chart as inline SVG, drawn on the server: a product's count of one license over
time (a step line: a count holds until the next report) against what its virtual account
owns (a dashed line). Only presentation attributes (``stroke=``, ``fill=``), no ``style``
(the console's CSP allows no inline style), no script.

A pure function of its points and words: the caller gives the texts in the page's
language and the functions that format dates and numbers for its locale.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 250
LEFT, RIGHT, TOP, BOTTOM = 64, 16, 16, 200  # the plot area's edges
USED_COLOUR = "#1f5fbf"
OWNED_COLOUR = "#b42318"
AXIS_COLOUR = "#5b6575"
GRID_COLOUR = "#d7dce3"


@dataclass(frozen=True)
class Point:
    at: dt.datetime
    count: int


@dataclass(frozen=True)
class ChartText:
    """The chart's words, in the page's language."""

    title: str  # what the chart shows: its accessible name
    description: str  # the text alternative: what it says in a sentence
    used: str  # legend of the usage line
    owned: str  # legend of the owned line
    empty: str  # shown in the plot when there is no report


def _nice_top(value: int) -> tuple[int, int]:
    """The top of the count axis (at least ``value``, at least 1) and its tick step:
    1, 2 or 5 times a power of ten, at most five steps."""
    value = max(value, 1)
    magnitude = 1
    while True:
        for factor in (1, 2, 5):
            step = factor * magnitude
            steps = -(-value // step)  # ceiling
            if steps <= 5:
                return steps * step, step
        magnitude *= 10


def _x_of(points: Sequence[Point]) -> Callable[[dt.datetime], float]:
    first, last = points[0].at, points[-1].at
    span = (last - first).total_seconds()
    if span <= 0:  # one report, or all at one moment: in the middle
        return lambda _: (LEFT + WIDTH - RIGHT) / 2
    return lambda at: LEFT + (at - first).total_seconds() / span * (WIDTH - RIGHT - LEFT)


def _text(x: float, y: float, content: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="12" '
        f'fill="{AXIS_COLOUR}">{escape(content)}</text>'
    )


def usage_chart(
    points: Sequence[Point],
    owned: int,
    text: ChartText,
    *,
    chart_id: str,
    date: Callable[[dt.datetime], str],
    number: Callable[[int], str],
) -> Markup:
    """The chart of ``points`` (any order; drawn oldest first) against ``owned``."""
    points = sorted(points, key=lambda p: p.at)
    # One more than the largest count: neither line runs along the plot's top edge.
    top, step = _nice_top(max([owned, *(p.count for p in points)]) + 1)

    def y_of(count: int) -> float:
        return BOTTOM - count / top * (BOTTOM - TOP)

    title_id, desc_id = f"{chart_id}-title", f"{chart_id}-desc"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{escape(chart_id)}" class="usage-chart" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
        f'aria-labelledby="{escape(title_id)} {escape(desc_id)}">',
        f'<title id="{escape(title_id)}">{escape(text.title)}</title>',
        f'<desc id="{escape(desc_id)}">{escape(text.description)}</desc>',
    ]
    # The count axis: a grid line and a number per step.
    for count in range(0, top + 1, step):
        y = y_of(count)
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        parts.append(_text(LEFT - 6, y + 4, number(count), "end"))
    parts.append(
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{BOTTOM}" stroke="{AXIS_COLOUR}" '
        f'stroke-width="1"/>'
    )
    # What the virtual account owns: one dashed line across.
    parts.append(
        f'<line class="owned" x1="{LEFT}" y1="{y_of(owned):.1f}" x2="{WIDTH - RIGHT}" '
        f'y2="{y_of(owned):.1f}" stroke="{OWNED_COLOUR}" stroke-width="2" '
        f'stroke-dasharray="6 4"/>'
    )
    if points:
        x_of = _x_of(points)
        path = [f"M{x_of(points[0].at):.1f},{y_of(points[0].count):.1f}"]
        for point in points[1:]:
            path.append(f"H{x_of(point.at):.1f}")  # the count held until this report
            path.append(f"V{y_of(point.count):.1f}")
        parts.append(
            f'<path class="used" d="{" ".join(path)}" fill="none" stroke="{USED_COLOUR}" '
            f'stroke-width="2"/>'
        )
        for point in points:
            parts.append(
                f'<circle cx="{x_of(point.at):.1f}" cy="{y_of(point.count):.1f}" r="3" '
                f'fill="{USED_COLOUR}"/>'
            )
        # The time axis: the first and the last report's dates (one if they are one).
        first, last = points[0].at, points[-1].at
        if date(first) == date(last):  # one moment, as far as the label tells
            # In the middle: at the first point's x (the left edge when the reports are
            # apart by less than the label shows) half of it would fall off the chart.
            parts.append(_text((LEFT + WIDTH - RIGHT) / 2, BOTTOM + 18, date(first)))
        else:
            parts.append(_text(LEFT, BOTTOM + 18, date(first), "start"))
            parts.append(_text(WIDTH - RIGHT, BOTTOM + 18, date(last), "end"))
    else:
        parts.append(_text((LEFT + WIDTH - RIGHT) / 2, (TOP + BOTTOM) / 2, text.empty))
    parts.append(
        f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{WIDTH - RIGHT}" y2="{BOTTOM}" '
        f'stroke="{AXIS_COLOUR}" stroke-width="1"/>'
    )
    # The legend, below the time axis.
    legend_y = HEIGHT - 12
    parts.append(
        f'<line x1="{LEFT}" y1="{legend_y - 4}" x2="{LEFT + 24}" y2="{legend_y - 4}" '
        f'stroke="{USED_COLOUR}" stroke-width="2"/>'
    )
    parts.append(_text(LEFT + 30, legend_y, text.used, "start"))
    middle = (LEFT + WIDTH - RIGHT) / 2
    parts.append(
        f'<line x1="{middle}" y1="{legend_y - 4}" x2="{middle + 24}" y2="{legend_y - 4}" '
        f'stroke="{OWNED_COLOUR}" stroke-width="2" stroke-dasharray="6 4"/>'
    )
    parts.append(_text(middle + 30, legend_y, text.owned, "start"))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every text above is escaped
