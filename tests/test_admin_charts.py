"""The console's charts: a round scale with numbered grid lines, dates under the bars, honest percentages."""
from __future__ import annotations

import pytest

from mailer.admin import charts


@pytest.mark.parametrize("peak, whole, scale", [
    (1, True, (1, 1)), (3, True, (3, 1)), (7, True, (8, 2)), (10, True, (10, 5)), (101, True, (150, 50)),
    (4828, True, (6000, 2000)), (1.0, False, (1.0, 0.25)), (0.3, False, (0.3, 0.1)),
])
def test_a_scale_climbs_in_round_steps_to_a_top_at_or_above_the_peak(peak, whole, scale):
    assert charts.nice_scale(peak, whole) == pytest.approx(scale)


def test_three_signups_and_thousands_are_drawn_on_different_scales():
    few = charts.bar_chart([0, 3, 1], ["1 Nov", "2 Nov", "3 Nov"])
    many = charts.bar_chart([0, 4828, 3], ["1 Nov", "2 Nov", "3 Nov"])
    assert [label for _, label in few.ticks] == ["0", "1", "2", "3"]
    assert [label for _, label in many.ticks] == ["0", "2,000", "4,000", "6,000"]
    # Each grid line sits where a bar of its number would end.
    assert few.ticks[-1][0] == few.bars[1].y and many.ticks[0][0] == charts.HEIGHT
    assert many.bars[1].label == "2 Nov: 4,828"


def test_shares_are_drawn_up_to_one_hundred_percent():
    chart = charts.bar_chart([None, 0.5, 0.9996], ["1 Nov", "2 Nov", "3 Nov"], shares=True)
    assert [label for _, label in chart.ticks] == ["0%", "25%", "50%", "75%", "100%"]
    assert [b.label for b in chart.bars] == ["2 Nov: 50.0%", "3 Nov: 99.96%"]  # no bar for a day without signups


def test_dates_are_written_every_so_many_bars_back_from_today_every_other_one_minor():
    labels = [f"day {n}" for n in range(90)]
    marks = charts.bar_chart([1] * 90, labels, marks_every=15).marks
    assert [m.label for m in marks] == ["day 14", "day 29", "day 44", "day 59", "day 74", "day 89"]
    assert [m.minor for m in marks] == [True, False, True, False, True, False]
    assert marks[-1].anchor == "end" and marks[-1].x == pytest.approx(100 * 89.5 / 90, abs=0.001)
    assert charts.bar_chart([1, 2], ["a", "b"]).marks == []  # titles of posts, say: too long to write under bars


@pytest.mark.parametrize("share, shown", [
    (0, "0.0"), (1, "100.0"), (0.6, "60.0"), (2 / 3, "66.7"), (0.9996, "99.96"), (0.99999, "99.999"),
    (0.9999999, "99.999"), (0.0004, "0.04"), (0.0000001, "0.001"),
])
def test_a_percentage_reads_100_or_0_only_when_it_is(share, shown):
    assert charts.percent(share) == shown
