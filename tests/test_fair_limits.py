"""Limits one attacker can neither get around nor use up for everyone: an IPv6 /64 is one client (signup limits,
console lockout), no network takes more than its share of the hourly confirmation cap, and the confirmation
throttle counts per mailbox (+tags, Gmail's dots)."""
from __future__ import annotations

import logging
import uuid
from datetime import timedelta

import pytest
from flask import g
from sqlalchemy import delete, func, select, text, update

from mailer import config
from mailer.extensions import db, limiter
from mailer.models import AdminUser, Consent, Delivery, LoginAttempt, Subscriber, utcnow
from mailer.people import confirmation_cap, subscriptions
from mailer.people.mailboxes import mailbox_of
from mailer.people.networks import client_of, network_of
from mailer.people.roster import add_subscribers
from mailer.people.subscriptions import SignupRequest
from tests.admin_helpers import EMAIL, create_admin, log_in
from tests.conftest import app_with, fresh_database, make_app

THANKS = {"status": "ok", "message": "Thanks! Check your inbox and click the link in our email to confirm."}


# --- the rules -------------------------------------------------------------------------------------

def test_a_client_is_an_ipv4_address_or_an_ipv6_slash_64(app):
    assert client_of("192.0.2.7") == "192.0.2.7"
    assert client_of("::ffff:192.0.2.7") == "192.0.2.7"  # an IPv4 client on a dual-stack socket
    assert client_of("2001:db8:1:2:aaaa::1") == client_of("2001:db8:1:2::ffff") == "2001:db8:1:2::/64"
    assert client_of("2001:db8:1:3::1") == "2001:db8:1:3::/64"
    assert client_of(None) is None and client_of("not-an-address") == "not-an-address"
    app.config["IPV6_PREFIX"] = 56
    assert client_of("2001:db8:1:2ff::1") == "2001:db8:1:200::/56"


def test_a_network_is_an_ipv4_slash_24_or_an_ipv6_slash_48(app):
    assert network_of("203.0.113.9") == network_of("203.0.113.200") == "203.0.113.0/24"
    assert network_of("2001:db8:1:ffff::1") == "2001:db8:1::/48"
    app.config["NETWORK_IPV4_PREFIX"] = 32
    assert network_of("203.0.113.9") == "203.0.113.9"


@pytest.mark.parametrize("typed, mailbox", [
    ("a+x@gmail.com", "a@gmail.com"), ("a.b@gmail.com", "ab@gmail.com"), ("ab@googlemail.com", "ab@gmail.com"),
    ("a.b+news+more@googlemail.com", "ab@gmail.com"), ("a.b+x@example.com", "a.b@example.com"),
    ("+x@example.com", "+x@example.com"), ("A@Example.COM", "a@example.com")])
def test_the_mailbox_drops_the_tag_and_gmails_dots(typed, mailbox):
    assert mailbox_of(typed) == mailbox


def test_the_settings_are_checked_at_start_up(tmp_path):
    loaded = config.load({"MAILER_INSTANCE": str(tmp_path)})
    assert (loaded["IPV6_PREFIX"], loaded["NETWORK_IPV4_PREFIX"], loaded["NETWORK_IPV6_PREFIX"],
            loaded["CONFIRMATION_NETWORK_SHARE"]) == (64, 24, 48, 0.1)
    for env, words in [({"IPV6_PREFIX": "0"}, "IPV6_PREFIX: 0 is not a prefix length from 1 to 128"),
                       ({"IPV6_PREFIX": "/64"}, "IPV6_PREFIX: '/64' is not a whole number"),
                       ({"NETWORK_IPV4_PREFIX": "33"}, "NETWORK_IPV4_PREFIX: 33 is not a prefix length from 1 to 32"),
                       ({"NETWORK_IPV6_PREFIX": "129"}, "NETWORK_IPV6_PREFIX: 129"),
                       ({"CONFIRMATION_NETWORK_SHARE": "10%"}, "CONFIRMATION_NETWORK_SHARE: '10%' is not a fraction"),
                       ({"CONFIRMATION_NETWORK_SHARE": "0"}, "CONFIRMATION_NETWORK_SHARE: '0'"),
                       ({"CONFIRMATION_NETWORK_SHARE": "1.5"}, "CONFIRMATION_NETWORK_SHARE: '1.5'")]:
        with pytest.raises(config.ConfigError, match=words.replace("(", r"\(")):
            config.load({"MAILER_INSTANCE": str(tmp_path), **env})


# --- the signup rate limit, in Redis ---------------------------------------------------------------

def test_one_ipv6_slash_64_shares_one_signup_limit_and_another_has_its_own(tmp_path, sqlite_template, redis_url):
    import redis

    prefix = f"fair-{uuid.uuid4().hex}"
    limiter._storage_dead = False
    with app_with(tmp_path, sqlite_template, RATELIMIT_ENABLED=True, SIGNUP_RATE_LIMIT="2/minute",
                  RATELIMIT_STORAGE_URI=redis_url, RATELIMIT_KEY_PREFIX=prefix) as app:
        client = app.test_client()

        def signup(n: int, ip: str) -> int:
            return client.post("/subscribe", json={"email": f"r{n}@example.com"},
                               environ_base={"REMOTE_ADDR": ip}).status_code

        one_line = [signup(1, "2001:db8:1:2::1"), signup(2, "2001:db8:1:2::beef"), signup(3, "2001:db8:1:2:ffff::9")]
        next_line = signup(4, "2001:db8:1:3::1")
        ipv4 = [signup(5, "192.0.2.1"), signup(6, "192.0.2.1"), signup(7, "192.0.2.1"), signup(8, "192.0.2.2")]

        assert one_line == [202, 202, 429]  # a new address in the same /64 is the same client
        assert next_line == 202
        assert ipv4 == [202, 202, 429, 202]  # IPv4 stays per address
        with redis.Redis.from_url(redis_url) as store:
            keys = [k.decode() for k in store.scan_iter(f"*{prefix}*")]
            assert any("2001:db8:1:2::/64" in k for k in keys) and not any("beef" in k for k in keys)
            store.delete(*keys)


# --- the console lockout ---------------------------------------------------------------------------

def test_ten_failures_from_one_ipv6_slash_64_lock_it_and_not_the_next(either_app):
    db.session.execute(delete(LoginAttempt))
    db.session.execute(delete(AdminUser))
    db.session.commit()
    create_admin()

    def forget() -> None:  # each request its own `g`, as admin_helpers.fresh_g_per_request does for `app` alone
        for name in ("_login_user", "csrf_token"):
            g.pop(name, None)

    either_app.before_request_funcs.setdefault(None, []).insert(0, forget)
    client = either_app.test_client()
    for n in range(10):  # each from a new address of one /64, each on another account
        log_in(client, email=f"guess{n}@example.com", password="x", REMOTE_ADDR=f"2001:db8:5:6::{n + 1:x}")

    assert log_in(client, REMOTE_ADDR="2001:db8:5:6:1234::77").status_code == 429
    assert log_in(client, REMOTE_ADDR="2001:db8:5:7::1").status_code == 302  # the next /64 still gets in
    stored = db.session.scalars(select(LoginAttempt.ip).order_by(LoginAttempt.id)).all()
    assert stored[0] == "2001:db8:5:6::1"  # the address itself is kept as it was


# --- each network's share of the hourly cap --------------------------------------------------------

def confirmations(**where) -> int:
    db.session.rollback()
    query = select(func.count()).select_from(Delivery).join(Consent, text("delivery.dedupe_key = 'confirmation:' || consent.id"))
    for column, value in where.items():
        query = query.where(getattr(Consent, column).like(value))
    return db.session.scalar(query)


@pytest.mark.parametrize("recount", [0.0, 3600.0], ids=["counted-from-the-ledger", "counted-by-the-process"])
def test_one_slash_24_takes_no_more_than_its_share_and_another_network_still_gets_mail(either_app, monkeypatch,
                                                                                      caplog, recount):
    monkeypatch.setattr(confirmation_cap, "RECOUNT_SECONDS", recount)
    monkeypatch.setattr(confirmation_cap, "_network_alarms", {})
    either_app.config.update(CONFIRMATION_HOURLY_CAP=20, CONFIRMATION_NETWORK_SHARE=0.1)  # 2 for each network
    for n in range(5):
        subscriptions.sign_up(db.session, SignupRequest(email=f"flood{n}@example.com", ip=f"203.0.113.{n + 1}"))
    for n in range(3):
        subscriptions.sign_up(db.session, SignupRequest(email=f"v6-{n}@example.com", ip=f"2001:db8:9:{n}::1"))
    subscriptions.sign_up(db.session, SignupRequest(email="reader@example.com", ip="198.51.100.7"))

    assert confirmations(ip="203.0.113.%") == 2
    assert confirmations(ip="2001:db8:9:%") == 2  # an IPv6 /48 is one network, however many /64s it has
    assert confirmations(ip="198.51.100.7") == 1
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 9  # every signup is stored
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len([w for w in warnings if "203.0.113.0/24" in w]) == 1  # once, not once per refused signup
    assert any("CONFIRMATION_NETWORK_SHARE reached for the network 2001:db8:9::/48" in w for w in warnings)


def test_over_its_share_a_network_gets_the_usual_answer(tmp_path, sqlite_template):
    with app_with(tmp_path, sqlite_template, CONFIRMATION_HOURLY_CAP=10, CONFIRMATION_NETWORK_SHARE=0.2) as app:
        client = app.test_client()
        answers = [client.post("/subscribe", json={"email": f"a{n}@example.com"},
                               environ_base={"REMOTE_ADDR": f"203.0.113.{n}"}) for n in range(1, 5)]

        assert [(a.status_code, a.json) for a in answers] == [(202, THANKS)] * 4
        assert confirmations() == 2 and db.session.scalar(select(func.count()).select_from(Consent)) == 4


def test_a_known_address_gives_its_networks_share_back(private_pg_app, monkeypatch):
    monkeypatch.setattr(confirmation_cap, "RECOUNT_SECONDS", 3600.0)
    private_pg_app.config.update(CONFIRMATION_HOURLY_CAP=20, CONFIRMATION_NETWORK_SHARE=0.1)
    for _ in range(3):  # the throttle owes the same address nothing more: the share is not used up by asking
        subscriptions.sign_up(db.session, SignupRequest(email="same@example.com", ip="203.0.113.1"))
    subscriptions.sign_up(db.session, SignupRequest(email="other@example.com", ip="203.0.113.2"))
    assert confirmations(ip="203.0.113.%") == 2


# --- the confirmation throttle per mailbox ---------------------------------------------------------

def signed_up(*emails: str) -> list[int]:
    """The confirmations owed to each of these addresses, signing them up one after the other."""
    for email in emails:
        subscriptions.sign_up(db.session, SignupRequest(email=email, ip="192.0.2.50"))
    db.session.rollback()
    return [db.session.scalar(select(func.count()).select_from(Delivery).join(Subscriber).where(
        Subscriber.email == email, Delivery.kind == "confirmation")) for email in emails]


@pytest.mark.parametrize("emails", [("a@gmail.com", "a+x@gmail.com"), ("a.b@gmail.com", "ab@googlemail.com"),
                                    ("news+1@example.com", "news+2@example.com")])
def test_tagged_and_dotted_forms_of_one_mailbox_share_one_throttle(either_app, emails):
    either_app.config["CONFIRMATION_HOURLY_CAP"] = 0
    assert signed_up(*emails, "someone.else@gmail.com") == [1, 0, 1]
    stored = db.session.execute(select(Subscriber.email, Subscriber.mailbox).order_by(Subscriber.id)).all()
    assert [e for e, _ in stored] == [*emails, "someone.else@gmail.com"]  # stored as typed
    assert stored[0].mailbox == stored[1].mailbox == mailbox_of(emails[0])

    db.session.execute(update(Delivery).values(created_at=utcnow() - timedelta(minutes=16)))
    db.session.commit()
    assert signed_up(emails[1]) == [1]  # the throttle's 15 minutes are over for the mailbox as a whole


def test_every_path_that_adds_a_subscriber_sets_the_mailbox(either_app):
    add_subscribers(db.session, {"i.m.port+file@gmail.com": None}, confirmed=True, form="import", source="a file")
    subscriptions.subscribe(db.session, SignupRequest(email="api+tag@example.com", form="api"))
    db.session.commit()
    signed_up("Sign.Up+form@GoogleMail.com")
    assert dict(db.session.execute(select(Subscriber.email, Subscriber.mailbox)).all()) == {
        "i.m.port+file@gmail.com": "import@gmail.com", "api+tag@example.com": "api@example.com",
        "sign.up+form@googlemail.com": "signup@gmail.com"}


# --- the migration fills the rows already there ----------------------------------------------------

@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def test_the_upgrade_fills_mailboxes_and_login_networks(database, tmp_path):
    from flask_migrate import upgrade

    url = f"sqlite:///{tmp_path / 'm.db'}" if database == "sqlite" else fresh_database("mailer_mailboxes")
    with make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url).app_context():
        upgrade(revision="0014")
        db.session.execute(text(
            "INSERT INTO subscriber (email, status, created_at, updated_at, welcome_step, digest_frequency, imported) "
            "VALUES ('a.b+x@googlemail.com', 'pending', :at, :at, 0, 'every', false)"), {"at": utcnow()})
        db.session.execute(text("INSERT INTO login_attempt (email, ip, succeeded, at) VALUES "
                                "(:email, '2001:db8::5', false, :at), (:email, '192.0.2.1', false, :at)"),
                           {"email": EMAIL, "at": utcnow()})
        db.session.commit()
        upgrade()
        assert db.session.execute(text("SELECT email, mailbox FROM subscriber")).all() == [
            ("a.b+x@googlemail.com", "ab@gmail.com")]
        assert sorted(db.session.scalars(text("SELECT network FROM login_attempt"))) == ["192.0.2.1", "2001:db8::/64"]
        db.session.remove()
        db.engine.dispose()
