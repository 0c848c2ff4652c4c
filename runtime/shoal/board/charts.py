"""Small SVG charts drawn on the server: a queue's done and dead tasks per minute over the
last hour (:class:`~shoal.core.throughput.FinishCounts`), as bars, no JS library needed.

Everything put in the SVG is a number this module formats or text escaped by
:func:`html.escape`, so the markup it returns is safe to embed as it is.
"""

from __future__ import annotations

import html

import markupsafe

from shoal.core.throughput import FinishCounts

WIDTH, HEIGHT = 180, 36
"""The chart's size in CSS pixels: one bar per minute, done above the axis, dead below."""


def _bars(counts: tuple[int, ...], top: float, height: float, down: bool, css: str) -> str:
    peak = max(counts, default=0)
    if peak == 0:
        return ""
    step = WIDTH / len(counts)
    bars = []
    for n, count in enumerate(counts):
        if count == 0:
            continue
        size = max(1.0, height * count / peak)
        y = top if down else top + height - size
        bars.append(
            f'<rect class="{css}" x="{n * step:.2f}" y="{y:.2f}" '
            f'width="{max(step - 0.5, 0.5):.2f}" height="{size:.2f}"/>'
        )
    return "".join(bars)


def finish_chart(counts: FinishCounts) -> markupsafe.Markup:
    """``counts`` as an inline SVG: done per minute (upwards) and dead (downwards), oldest
    minute on the left, with a title naming the hour's totals for screen readers."""
    half = HEIGHT / 2
    title = html.escape(
        f"{counts.queue}: {sum(counts.done)} done, {sum(counts.dead)} dead in the last hour"
    )
    svg = (
        f'<svg class="chart" role="img" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{title}</title>"
        f'<line class="axis" x1="0" y1="{half}" x2="{WIDTH}" y2="{half}"/>'
        f"{_bars(counts.done, 0, half - 1, False, 'done')}"
        f"{_bars(counts.dead, half + 1, half - 1, True, 'dead')}"
        "</svg>"
    )
    return markupsafe.Markup(svg)
