"""Charts drawn on the server as inline SVG: no script, no library, readable without colour.

Each chart has a title and a description for screen readers, text labels on its axes, and
series told apart by pattern (solid, hatched, dashed) as well as colour. The page shows the
same figures as a table beside it.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from flask_babel import format_date
from flask_babel import gettext as _
from markupsafe import Markup, escape

from relay_ops.services.stats import Series

# A narrow drawing (400 units): on a 360 px phone it is drawn at about 0.8 scale, so the
# 14-unit labels stay about 11 px high; a wide screen scales it up. Room under the axis for
# two lines of date and a flag.
WIDTH, HEIGHT = 400, 250
LEFT, RIGHT, TOP, BOTTOM = 40, 10, 16, 56
LEGEND_ROW = 20


def _frame(title: str, desc: str, body: str, legend: str, rows: int) -> Markup:
    # Every text put into the SVG (titles, labels, tooltips) went through ``escape``.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT + 8 + LEGEND_ROW * rows}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet">'
        f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
        '<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
        'patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/>'
        '<line x1="0" y1="0" x2="0" y2="6" stroke="#7a3e00" stroke-width="3"/></pattern></defs>'
        f"{body}{legend}</svg>"
    )


def _scale(top_value: int) -> tuple[int, float]:
    """The axis maximum (a round 2, 5 or 10 times a power of ten) and pixels per unit."""
    top = max(2, top_value)
    magnitude = 10 ** (len(str(top)) - 1)
    nice = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= top)
    return nice, (HEIGHT - TOP - BOTTOM) / nice


def _axes(nice: int, per_unit: float, labels: list[str]) -> str:
    parts = []
    for value in (0, nice // 2, nice):
        y = HEIGHT - BOTTOM - value * per_unit
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{value}</text>'
        )
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(labels))
    for i, label in enumerate(labels):
        if len(labels) > 8 and i % 2:
            continue  # every other date, so the labels never overlap
        x = LEFT + slot * (i + 0.5)
        # A label may take two lines (the day's name over its date): a slot is narrow.
        lines = "".join(
            f'<tspan x="{x:.1f}" dy="{0 if n == 0 else 16}">{escape(line)}</tspan>'
            for n, line in enumerate(label.split("\n"))
        )
        parts.append(
            f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
            f'class="tick">{lines}</text>'
        )
    return "".join(parts)


def _legend(items: list[tuple[str, str]]) -> str:
    """One row per series: side by side they would not fit a phone's width."""
    parts, x = [], LEFT
    for row, (style, label) in enumerate(items):
        y = HEIGHT + LEGEND_ROW * row
        if style == "line":
            parts.append(f'<line x1="{x}" x2="{x + 18}" y1="{y + 7}" y2="{y + 7}" '
                         'class="line-held"/>')
        elif style == "dashed":
            parts.append(f'<line x1="{x}" x2="{x + 18}" y1="{y + 7}" y2="{y + 7}" '
                         'class="line-capacity"/>')
        else:
            parts.append(f'<rect x="{x}" y="{y}" width="14" height="14" class="{style}"/>')
        parts.append(f'<text x="{x + 24}" y="{y + 12}" class="legend">{escape(label)}</text>')
    return "".join(parts)


def _labels(series: Series) -> list[str]:
    return [str(format_date(d.day, "dd/MM")) for d in series.days]


def parcels_per_day(series: Series) -> Markup:
    labels = _labels(series)
    nice, per_unit = _scale(max([max(d.arrivals, d.pickups) for d in series.days] or [0]))
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(series.days))
    bar = max(2.0, slot * 0.35)
    bars = []
    for i, d in enumerate(series.days):
        x = LEFT + slot * i + slot * 0.12
        for offset, value, css, name in (
            (0.0, d.arrivals, "bar-in", _("parcels checked in")),
            (bar + 1, d.pickups, "bar-out", _("parcels picked up")),
        ):
            h = value * per_unit
            bars.append(
                f'<rect x="{x + offset:.1f}" y="{HEIGHT - BOTTOM - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" class="{css}"><title>{escape(labels[i])}: {value} '
                f"{escape(name)}</title></rect>"
            )
    total_in = sum(d.arrivals for d in series.days)
    total_out = sum(d.pickups for d in series.days)
    desc = _("%(days)s days: %(checked_in)s parcels checked in, %(picked_up)s picked up.",
             days=len(series.days), checked_in=total_in, picked_up=total_out)
    legend = _legend([("bar-in", _("parcels checked in")), ("bar-out", _("parcels picked up"))])
    return _frame(_("Parcels per day"), desc, _axes(nice, per_unit, labels) + "".join(bars),
                  legend, 2)


def occupancy(series: Series) -> Markup:
    labels = _labels(series)
    peak = max([d.held for d in series.days] + [series.capacity])
    nice, per_unit = _scale(peak)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(series.days))
    points = " ".join(
        f"{LEFT + slot * (i + 0.5):.1f},{HEIGHT - BOTTOM - d.held * per_unit:.1f}"
        for i, d in enumerate(series.days)
    )
    dots = "".join(
        f'<circle cx="{LEFT + slot * (i + 0.5):.1f}" cy="{HEIGHT - BOTTOM - d.held * per_unit:.1f}"'
        f' r="3.5" class="dot-held"><title>{escape(labels[i])}: {d.held}</title></circle>'
        for i, d in enumerate(series.days)
    )
    cap_y = HEIGHT - BOTTOM - series.capacity * per_unit
    body = (
        _axes(nice, per_unit, labels)
        + f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{cap_y:.1f}" y2="{cap_y:.1f}" '
        f'class="line-capacity"/>'
        + f'<polyline points="{points}" class="line-held"/>' + dots
    )
    last = series.days[-1].held if series.days else 0
    desc = _("Parcels on the premises at the end of each day; today %(held)s for %(capacity)s "
             "places.", held=last, capacity=series.capacity)
    legend = _legend([("line", _("parcels on hand")), ("dashed", _("capacity"))])
    return _frame(_("Occupancy"), desc, body, legend, 2)


def forecast(site_name: str, days: list[dict[str, Any]]) -> Markup:
    """A site's forecast: the predicted parcels on hand at each day's peak (solid line), the
    uncertainty band (hatched), the capacity (dashed); closing days and days at risk are
    written under their date, not only coloured."""
    parsed = [date.fromisoformat(d["day"]) for d in days]
    labels = [str(format_date(d, "EEE dd/MM")) for d in parsed]
    capacity = max([d["capacity"] for d in days] or [0])
    nice, per_unit = _scale(max([d["high"] for d in days] + [capacity]))
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(days))
    base = HEIGHT - BOTTOM
    band, marks = [], []
    for i, d in enumerate(days):
        x = LEFT + slot * i + slot * 0.2
        top = base - d["high"] * per_unit
        h = (d["high"] - d["low"]) * per_unit
        tip = _("%(day)s: %(predicted)s expected (%(low)s to %(high)s) for %(capacity)s places",
                day=labels[i], predicted=_rounded(d["predicted"]), low=d["low"],
                high=d["high"], capacity=d["capacity"])
        band.append(
            f'<rect x="{x:.1f}" y="{top:.1f}" width="{slot * 0.6:.1f}" height="{max(h, 1):.1f}" '
            f'class="band"><title>{escape(tip)}</title></rect>'
        )
        flag = _("closed") if d["closed"] else (_("at risk") if d["at_risk"] else "")
        if flag:
            css = "flag-closed" if d["closed"] else "flag-risk"
            marks.append(
                f'<text x="{LEFT + slot * (i + 0.5):.1f}" y="{base + 48}" text-anchor="middle" '
                f'class="tick {css}">{escape(flag)}</text>'
            )
    points = " ".join(
        f"{LEFT + slot * (i + 0.5):.1f},{base - d['predicted'] * per_unit:.1f}"
        for i, d in enumerate(days)
    )
    cap_y = base - capacity * per_unit
    body = (
        _axes(nice, per_unit, [str(format_date(d, "EEE\ndd/MM")) for d in parsed])
        + "".join(band)
        + f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{cap_y:.1f}" y2="{cap_y:.1f}" '
        'class="line-capacity"/>'
        + f'<polyline points="{points}" class="line-held"/>' + "".join(marks)
    )
    risky = [labels[i] for i, d in enumerate(days) if d["at_risk"]]
    desc = (
        _("%(site)s: %(n)s days at risk of exceeding %(capacity)s places: %(days)s.",
          site=site_name, n=len(risky), capacity=capacity, days=", ".join(risky))
        if risky else
        _("%(site)s: no day at risk of exceeding %(capacity)s places.",
          site=site_name, capacity=capacity)
    )
    legend = _legend([("line", _("expected on hand")), ("band", _("likely range")),
                      ("dashed", _("capacity"))])
    return _frame(_("Forecast for %(site)s", site=site_name), desc, body, legend, 3)


def _rounded(value: float) -> str:
    return str(round(value))
