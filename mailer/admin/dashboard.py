"""The first page after login: the list at a glance, growth, and the latest digests."""
from __future__ import annotations

from flask import render_template

from ..extensions import db
from ..posts import digest_results as results
from ..posts import reputation
from . import bp, charts, stats

RATE_DAYS = 30  # the dashboard's window for the bounce and complaint rates of all mail
DATE_EVERY = 15  # days between the dates under a chart: six fit a laptop card, three a phone


@bp.get("/")
def dashboard():
    latest = results.results(db.session, results.latest(db.session, 5))
    numbers = stats.snapshot(db.session, [r.id for r in latest], RATE_DAYS)
    days = numbers.days
    labels = [f"{d.day.day} {d.day:%b}" for d in days]
    digest_rates = reputation.digest_rates(db.session, [r.id for r in latest], sent=numbers.digests_sent)
    recent_rates = reputation.recent_rates(db.session, RATE_DAYS, sent=numbers.sent_recently)
    db.session.commit()  # keeps the final counts of digests that just finished
    return render_template(
        "admin/dashboard.html", statuses=numbers.statuses, taken_at=numbers.taken_at, days=days, latest=latest,
        signups=charts.bar_chart([d.signups for d in days], labels, marks_every=DATE_EVERY),
        rates=charts.bar_chart([d.rate for d in days], labels, shares=True, marks_every=DATE_EVERY),
        rate=stats.confirmation_rate(days), imported=sum(d.imported for d in days),
        digest_rates=digest_rates, recent_rates=recent_rates, rate_days=RATE_DAYS)

