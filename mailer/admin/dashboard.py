"""The first page after login: the list at a glance, growth, and the latest digests."""
from __future__ import annotations

from flask import render_template

from .. import digest_results as results
from ..extensions import db
from . import bp, charts, stats


@bp.get("/")
def dashboard():
    numbers = stats.snapshot(db.session, str(db.engine.url))
    days = numbers.days
    labels = [d.day.strftime("%d %b") for d in days]
    rates = [round(100 * d.rate, 1) if d.rate is not None else None for d in days]
    latest = results.results(db.session, results.latest(db.session, 5))
    db.session.commit()  # keeps the final counts of digests that just finished
    return render_template(
        "admin/dashboard.html", statuses=numbers.statuses, taken_at=numbers.taken_at, days=days, latest=latest,
        signups=charts.bar_chart([d.signups for d in days], labels),
        rates=charts.bar_chart(rates, labels, unit="%", top=100),
        rate=stats.confirmation_rate(days), first_label=labels[0], last_label=labels[-1])

