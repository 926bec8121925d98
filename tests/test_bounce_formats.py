"""Bounces in the shapes real MTAs send, through `mailer bounces process --recipient` and `POST /webhooks/dsn`."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from mailer.api_tokens import create_token
from mailer.bounces import verp
from mailer.extensions import db
from mailer.models import MailEvent
from tests.bounce_formats import FORMATS, NOT_A_FAILURE, sample
from tests.test_bounces import add_subscriber, events, fresh, owe, process, statuses

# What the MTA's own headers name when the pipe passes the envelope recipient on the command line instead.
BOUNCE_MAILBOX = "bounces@mailer.test"
EXPECTED = {kind: [name for name, _, k in FORMATS if k == kind] for kind in ("hard_bounce", "soft_bounce", NOT_A_FAILURE)}


def status_after(kind: str) -> str:
    return "bounced" if kind == "hard_bounce" else "confirmed"


@pytest.mark.parametrize("name, shape, kind", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_mta_shape_through_the_pipe_command(app, runner, name, shape, kind):
    sub = add_subscriber()
    sent, queued = owe(sub, "welcome:1", "sent"), owe(sub, "welcome:2")
    address = verp.envelope_sender(sent.id)

    result = process(runner, sample(name, BOUNCE_MAILBOX), "--recipient", address)

    if kind == NOT_A_FAILURE:
        assert result.exit_code == 1 and "Ignored" in result.output, result.output
        assert events() == 0
    else:
        assert result.exit_code == 0, result.output
        event = db.session.scalar(select(MailEvent))
        assert (event.kind, event.delivery_id, event.subscriber_id) == (kind, sent.id, sub.id), event.detail
        assert event.detail
    assert fresh(sub).status == status_after(kind)
    assert statuses(sub)["welcome:2"] == ("skipped" if kind == "hard_bounce" else "queued")


@pytest.mark.parametrize("name, shape, kind", FORMATS, ids=[f[0] for f in FORMATS])
def test_each_mta_shape_through_the_webhook(app, client, name, shape, kind):
    sub = add_subscriber()
    token = create_token(db.session, "mta")
    db.session.commit()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)

    response = client.post("/webhooks/dsn", query_string={"recipient": address}, data=sample(name, BOUNCE_MAILBOX),
                           headers={"Authorization": f"Bearer {token}", "Content-Type": "message/rfc822"})

    if kind == NOT_A_FAILURE:
        assert response.status_code == 400 and "nothing to do" in response.json["error"], response.json
        assert events() == 0
    else:
        assert response.status_code == 200, response.json
        assert response.json["result"].startswith(f"Recorded {kind.replace('_', ' ')}")
        assert db.session.scalar(select(MailEvent.kind)) == kind
    assert fresh(sub).status == status_after(kind)


@pytest.mark.parametrize("name", EXPECTED["hard_bounce"])
def test_a_hard_bounce_in_any_shape_to_a_forged_verp_address_suppresses_nobody(app, runner, name):
    sub = add_subscriber()
    delivery = owe(sub, "welcome:1", "sent")
    forged = verp.envelope_sender(delivery.id).replace(f"+{delivery.id}-", f"+{delivery.id + 1}-")
    # Forged everywhere: the headers, the returned copy of the mail and the command line.
    result = process(runner, sample(name, forged), "--recipient", forged)
    assert result.exit_code == 0 and "nobody was suppressed" in result.output, result.output
    assert fresh(sub).status == "confirmed" and events() == 1


def test_the_verp_address_quoted_in_a_text_bounce_names_the_delivery(app, runner):
    # An MTA whose pipe passes no recipient and whose headers name only the shared mailbox: qmail's
    # copy of the returned mail still carries the signed Return-Path.
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    message = sample("qmail-hard-bounce.eml", address).replace(
        f"Delivered-To: {address}".encode(), f"Delivered-To: {BOUNCE_MAILBOX}".encode()).replace(
        f"To: {address}".encode(), f"To: {BOUNCE_MAILBOX}".encode())
    result = process(runner, message)
    assert result.exit_code == 0 and "is now bounced" in result.output, result.output


def test_what_no_rule_reads_is_kept_as_a_soft_bounce_and_three_in_a_week_suppress(app, runner):
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    for n in range(3):
        message = sample("challenge-response.eml", address, **{"7731@protect": f"773{n}@protect"})
        result = process(runner, message, "--recipient", address)
        assert result.exit_code == 0 and "soft bounce" in result.output, result.output
        assert fresh(sub).status == ("bounced" if n == 2 else "confirmed")
    details = db.session.scalars(select(MailEvent.detail)).all()
    assert len(details) == 3
    # The console shows what it said, so a person can judge what the rules could not.
    assert all(d.startswith("unrecognised report, counted as a soft bounce: Subject: Please verify") for d in details)
    assert all("accepts mail only from approved senders" in d for d in details)


def test_mail_that_no_rule_reads_and_that_names_no_delivery_is_ignored(app, runner):
    sub = add_subscriber()
    owe(sub, "welcome:1", "sent")
    result = process(runner, sample("challenge-response.eml", BOUNCE_MAILBOX))
    assert result.exit_code == 1 and "not sent to one of our VERP addresses" in result.output
    assert events() == 0 and fresh(sub).status == "confirmed"


def test_auto_submitted_alone_does_not_make_a_report_an_auto_reply(app, runner):
    # MTAs mark their bounces "Auto-Submitted: auto-replied" too: only an auto-reply's shape makes one.
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    message = sample("challenge-response.eml", address, **{"MIME-Version": "Auto-Submitted: auto-replied\nMIME-Version"})
    assert b"Auto-Submitted: auto-replied" in message
    result = process(runner, message, "--recipient", address)
    assert result.exit_code == 0 and "soft bounce" in result.output, result.output


def test_a_full_mailbox_is_soft_even_with_a_permanent_status(app, runner):
    # RFC 3463: X.2.2 (mailbox full) may be permanent or persistent; three in a week suppress, one does not.
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    message = sample("postfix-hard-bounce.eml", address, **{"Status: 5.1.1": "Status: 5.2.2",
                                                             "550 5.1.1": "552 5.2.2"})
    result = process(runner, message)
    assert result.exit_code == 0 and "soft bounce" in result.output, result.output
    assert fresh(sub).status == "confirmed"


def test_a_dsn_whose_action_says_nothing_is_read_by_its_status(app, runner):
    sub = add_subscriber()
    address = verp.envelope_sender(owe(sub, "welcome:1", "sent").id)
    message = sample("postfix-hard-bounce.eml", address, **{"Action: failed\n": "", "report-type=delivery-status;": ""})
    assert b"Action:" not in message and b"report-type" not in message
    result = process(runner, message)
    assert result.exit_code == 0 and "is now bounced" in result.output, result.output
