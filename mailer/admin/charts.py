"""Charts drawn on the server as SVG shapes: no script, nothing for the Content-Security-Policy to refuse.

Across, a chart is measured in percent of its width, so it fills a laptop card or a phone screen without
stretching its text; up and down, in pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

HEIGHT, TOP, BELOW = 160, 10, 22  # the bars' area, the room above the top grid line, the time axis under it
GRID_LINES = 4  # at most, above zero


@dataclass
class Bar:
    x: float  # percent
    y: float
    width: float  # percent
    height: float
    label: str


@dataclass
class Mark:
    """A date under a bar; a minor one is left out on a phone, where every other would collide."""
    x: float  # percent
    label: str
    anchor: str = "middle"
    minor: bool = False


@dataclass
class Chart:
    bars: list[Bar]
    ticks: list[tuple[float, str]]  # (y, label) of the horizontal grid lines, zero first
    marks: list[Mark] = field(default_factory=list)
    height: int = HEIGHT

    @property
    def full_height(self) -> int:
        return self.height + (BELOW if self.marks else 4)

    @property
    def scale_width(self) -> int:
        """Room left of the bars for the longest tick label, in pixels."""
        return 10 + 7 * max((len(label) for _, label in self.ticks), default=1)


def bar_chart(values: list[float | None], labels: list[str], shares: bool = False, marks_every: int = 0) -> Chart:
    """Evenly spaced bars under a round top, with its grid lines numbered; None draws no bar.

    `shares` are 0 to 1, drawn up to 100 %; `marks_every` > 0 writes every so many labels under the bars, counted
    back from the last (today, on a time axis).
    """
    peak = 1.0 if shares else max([v for v in values if v is not None] + [1])
    top, step = nice_scale(peak, whole=not shares)
    scale = (HEIGHT - TOP) / top
    width = 100 / max(len(values), 1)
    bars = []
    for n, (value, label) in enumerate(zip(values, labels)):
        if value is None:
            continue
        height = round(value * scale, 2)
        text = percent(value) + "%" if shares else f"{value:,.0f}"
        bars.append(Bar(round(n * width + width * 0.1, 3), round(HEIGHT - height, 2), round(width * 0.8, 3), height,
                        f"{label}: {text}"))
    ticks = []
    for i in range(round(top / step) + 1):
        value = i * step
        ticks.append((round(HEIGHT - value * scale, 2), f"{100 * value:.0f}%" if shares else f"{value:,.0f}"))
    return Chart(bars, ticks, _marks(labels, marks_every) if marks_every else [])


@dataclass
class LabelledBar:
    """One row of a chart read across: its label and value written out, its bar a share of the longest."""
    label: str
    value: int
    width: float  # percent of the row


def labelled_bars(values: list[int], labels: list[str]) -> list[LabelledBar]:
    peak = max(values + [1])
    return [LabelledBar(label, value, round(100 * value / peak, 2)) for value, label in zip(values, labels)]


@dataclass
class SplitBar:
    """A row read across in two parts, people's then machines' (a post's clicks), the whole a share of the longest."""
    label: str
    people: int
    machines: int
    people_width: float  # percent of the row
    machines_width: float


def split_bars(people: list[int], machines: list[int], labels: list[str]) -> list[SplitBar]:
    peak = max([p + m for p, m in zip(people, machines)] + [1])
    return [SplitBar(label, p, m, round(100 * p / peak, 2), round(100 * m / peak, 2))
            for p, m, label in zip(people, machines, labels)]


def nice_scale(peak: float, whole: bool = True) -> tuple[float, float]:
    """A top at or above `peak` and a step of 1, 2, 2.5 or 5 times a power of ten, at most GRID_LINES steps to it."""
    rough = peak / GRID_LINES
    power = 10 ** math.floor(math.log10(rough))
    for multiple in (1, 2, 2.5, 5, 10):
        step = multiple * power
        if step >= rough * (1 - 1e-9) and (not whole or step == int(step)):
            break
    if whole:
        step = max(step, 1)
    return math.ceil(peak / step - 1e-9) * step, step


def percent(share: float) -> str:
    """A share as a percentage with one decimal, or more where one would round it to 0.0 or 100.0 untruly."""
    value = 100 * share
    for places in (1, 2, 3):
        shown = round(value, places)
        if 0 < shown < 100 or shown == value:
            return f"{shown:.{places}f}"
    return f"{math.floor(value * 1000) / 1000:.3f}" if value > 50 else f"{math.ceil(value * 1000) / 1000:.3f}"


def _marks(labels: list[str], every: int) -> list[Mark]:
    width, last = 100 / len(labels), len(labels) - 1
    marks = []
    for k, n in enumerate(range(last, -1, -every)):
        x = round((n + 0.5) * width, 3)
        if x < 5:  # half a label would hang off the left edge
            break
        marks.append(Mark(x, labels[n], "end" if n == last else "middle", minor=k % 2 == 1))
    return marks[::-1]
