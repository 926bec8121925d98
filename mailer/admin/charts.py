"""Charts drawn on the server as SVG shapes: no script, nothing for the Content-Security-Policy to refuse."""
from __future__ import annotations

from dataclasses import dataclass

WIDTH, HEIGHT, TOP = 900, 200, 10


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str


@dataclass
class Chart:
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, label) of the horizontal grid lines
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(values: list[float | None], labels: list[str], unit: str = "", top: float | None = None) -> Chart:
    """Evenly spaced bars scaled to `top` (the largest value by default); None draws no bar."""
    peak = top or max([v for v in values if v is not None] + [1])
    step = WIDTH / max(len(values), 1)
    bars = []
    for n, (value, label) in enumerate(zip(values, labels)):
        if value is None:
            continue
        height = (HEIGHT - TOP) * value / peak
        bars.append(Bar(round(n * step + step * 0.1, 2), round(HEIGHT - height, 2), round(step * 0.8, 2),
                        round(height, 2), f"{label}: {_fmt(value)}{unit}"))
    ticks = [(round(HEIGHT - (HEIGHT - TOP) * f, 2), _fmt(peak * f) + unit) for f in (0.5, 1.0)]
    return Chart(bars, ticks)


def _fmt(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
