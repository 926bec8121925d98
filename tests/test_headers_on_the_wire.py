"""Headers as they reach a real SMTP server, read as bytes: no parser that decodes them stands in between.

A production-length BASE_URL (100 characters) makes every unsubscribe link longer than a header line should be;
every kind of mail must still carry RFC 2369 syntax (`<URL>`, folded only at whitespace, never encoded words),
and no text from a post, a feed or the console may end a header line.
"""
from __future__ import annotations

import re
from contextlib import contextmanager

import pytest
from sqlalchemy import select, update

from mailer.extensions import db
from mailer.models import Consent, LeadMagnet, Status, Subscriber, WelcomeStep
from mailer.outbox import ledger, sender
from mailer.people import subscriptions
from mailer.people.subscriptions import SignupRequest
from mailer.posts import digests
from tests import factories
from tests.conftest import app_with
from tests.smtp_sink import SmtpSink

BASE_URL = "https://newsletters.career-questions-and-answers.example.com/for-managers-across-generations/mail/de"
assert len(BASE_URL) == 100
MAIL_FROM = "Karriere-Fragen & Antworten für Führungskräfte aller Generationen <newsletter@career-qa.example.com>"
LIST_ID = "Karriere-Fragen & Antworten für Führungskräfte <newsletters.career-questions-and-answers.example.com>"
MAILBOX = "unsubscribe@career-qa.example.com"
# Fields a list mail carries (the rest of the mails carry all but the List- ones); anything else was injected.
FIELDS = {"subject", "from", "to", "date", "message-id", "list-unsubscribe", "list-unsubscribe-post", "list-id",
          "mime-version", "content-type", "content-transfer-encoding"}


@pytest.fixture(scope="module")
def sink():
    s = SmtpSink(enable_SMTPUTF8=True).start()  # SMTPUTF8: a non-ASCII address takes the general build
    yield s
    s.stop()


@contextmanager
def wire_app(tmp_path, sqlite_template, sink, **overrides):
    """The app on a copy of the migrated database, sending to `sink` over SMTP, with production-length names."""
    sink.clear()
    with app_with(tmp_path, sqlite_template, SMTP_URL=sink.url, BASE_URL=BASE_URL, MAIL_FROM=MAIL_FROM,
                  LIST_ID=LIST_ID, **overrides) as app:
        yield app


def head_of(raw: bytes) -> list[bytes]:
    """The header lines of a message (folded lines kept apart), after checking the whole message's line ends."""
    assert b"\r" not in raw.replace(b"\r\n", b"") and b"\n" not in raw.replace(b"\r\n", b""), "a bare CR or LF"
    assert all(len(line) <= 998 for line in raw.split(b"\r\n")), "a line over 998 octets"
    head = raw.split(b"\r\n\r\n", 1)[0]
    return head.split(b"\r\n")


def fields(raw: bytes) -> dict[str, list[str]]:
    """Each field's raw value, unfolded (CRLF before whitespace taken out), by lower-case name."""
    found: dict[str, list[str]] = {}
    lines = head_of(raw)
    assert not lines[0][:1].isspace()
    unfolded: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            assert line.strip(), "a folded line of whitespace only"
            unfolded[-1] += line  # folded at whitespace: the space stays, the CRLF goes
        else:
            assert re.match(rb"[!-9;-~]+:", line), f"not a header field: {line!r}"
            unfolded.append(line)
    for field in unfolded:
        name, _, value = field.decode("utf-8").partition(":")
        found.setdefault(name.lower(), []).append(value.strip())
    return found


def check_headers(raw: bytes, to: str, list_mail: bool, mailto: bool = False) -> dict[str, list[str]]:
    """Every header of one received message is well formed; returns them (raw, unfolded)."""
    f = fields(raw)
    assert set(f) <= FIELDS, f"unexpected fields {set(f) - FIELDS}"
    for name in ("subject", "from", "to", "date", "message-id", "mime-version", "content-type"):
        assert len(f.get(name, [])) == 1, name
    assert f["to"] == [to]
    assert re.fullmatch(r"<[0-9a-f]{32}@career-qa\.example\.com>", f["message-id"][0])
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [-+]\d{4}", f["date"][0])
    # From: the display name may be encoded words (a phrase may be), the address never.
    assert f["from"][0].endswith(" <newsletter@career-qa.example.com>")
    assert "=?" not in f["from"][0].rpartition(" ")[2]
    if not list_mail:
        assert not {"list-unsubscribe", "list-unsubscribe-post", "list-id"} & set(f)
        return f
    [unsubscribe] = f["list-unsubscribe"]
    assert "=?" not in unsubscribe
    pattern = re.escape(f"<{BASE_URL}/unsubscribe/") + r"[A-Za-z0-9_.-]+>"
    if mailto:
        pattern += r", <mailto:unsubscribe\+\d+-[a-z2-7]+@career-qa\.example\.com>"
    assert re.fullmatch(pattern, unsubscribe), unsubscribe
    assert f["list-unsubscribe-post"] == ["List-Unsubscribe=One-Click"]
    [list_id] = f["list-id"]
    assert list_id.endswith(" <newsletters.career-questions-and-answers.example.com>")
    return f


def parsed_subject(raw: bytes) -> str:
    from email import policy
    from email.parser import BytesParser

    return str(BytesParser(policy=policy.default).parsebytes(raw)["Subject"])


def every_kind_of_mail(app, sink) -> dict[str, tuple[bytes, str]]:
    """Send one mail of every kind the system sends, through the outbox and SMTP; the raw bytes by kind."""
    subscriptions.subscribe(db.session, SignupRequest(email="ann@example.com", name="Ann"))
    db.session.commit()
    sender.deliver_due()
    subscriptions.confirm_subscription(db.session, db.session.scalar(select(Consent.id)))
    db.session.commit()
    sender.deliver_due()  # the download link and the first welcome step
    ann = factories.subscriber("ann@example.com")
    magnet_id = db.session.scalar(select(LeadMagnet.id))
    db.session.execute(update(WelcomeStep).where(WelcomeStep.template == "welcome_3")
                       .values(subject="Was als Nächstes kommt, und warum =?utf-8?q?das_bleibt?= wie es ist"))
    ledger.queue(db.session, "welcome", ann.id, f"welcome:{ann.id}:2", template="welcome_2")
    ledger.queue(db.session, "welcome", ann.id, f"welcome:{ann.id}:3", template="welcome_3")
    # A fresh download link is a magnet mail owed again (the preferences page and the 410 page owe it).
    ledger.queue(db.session, "magnet", ann.id, f"magnet:{ann.id}:{magnet_id}:renew:wire", magnet_id=magnet_id)
    db.session.commit()
    sender.deliver_due()

    # A digest: the frame for a plain address, the general build for one the frame cannot write.
    for email in ("zoe@example.com", "jürgen@exämple.com", '"ann lee"@example.com'):
        db.session.add(Subscriber(email=email, status=Status.CONFIRMED.value))
    factories.post(title="Café culture & the four-day week: what Gen Z asks for, and what a manager can give " * 2)
    digests.send_test(db.session, "admin@example.com")
    digests.create_digest(db.session)
    db.session.commit()
    sender.deliver_due()

    received = {r.recipients[0]: [] for r in sink.handler.messages}
    for r in sink.handler.messages:
        received[r.recipients[0]].append(r.raw)
    ann_mail = [(parsed_subject(raw), raw) for raw in received["ann@example.com"]]

    def by_subject(prefix: str) -> list[bytes]:
        return [raw for subject, raw in ann_mail if subject.startswith(prefix)]

    [confirmation], magnets = by_subject("Confirm"), by_subject("Your copy")
    [welcome], [welcome_2], [welcome_3] = by_subject("Welcome"), by_subject("Three questions"), by_subject("Was als")
    assert len(magnets) == 2
    [frame_digest] = received["zoe@example.com"]
    [utf8_digest] = received["jürgen@exämple.com"]
    [quoted_digest] = received['"ann lee"@example.com']
    [test_copy] = received["admin@example.com"]
    [digest_to_ann] = [raw for subject, raw in ann_mail if subject.startswith("Café")]
    return {"confirmation": (confirmation, "ann@example.com"), "magnet": (magnets[0], "ann@example.com"),
            "fresh magnet": (magnets[1], "ann@example.com"), "welcome": (welcome, "ann@example.com"),
            "welcome_2": (welcome_2, "ann@example.com"), "welcome_3 (own subject)": (welcome_3, "ann@example.com"),
            "digest (frame)": (frame_digest, "zoe@example.com"), "digest (frame, Ann)": (digest_to_ann, "ann@example.com"),
            "digest (general build, SMTPUTF8)": (utf8_digest, "jürgen@exämple.com"),
            "digest (general build, quoted address)": (quoted_digest, '"ann lee"@example.com'),
            "test copy": (test_copy, "admin@example.com")}


LIST_KINDS = {"welcome", "welcome_2", "welcome_3 (own subject)", "digest (frame)", "digest (frame, Ann)",
              "digest (general build, SMTPUTF8)", "digest (general build, quoted address)"}


@pytest.mark.parametrize("mailbox", [None, MAILBOX])
def test_every_kind_of_mail_has_well_formed_headers_with_a_production_length_base_url(tmp_path, sqlite_template, sink,
                                                                                       mailbox):
    with wire_app(tmp_path, sqlite_template, sink, UNSUBSCRIBE_MAILBOX=mailbox) as app:
        mails = every_kind_of_mail(app, sink)
        for kind, (raw, to) in mails.items():
            check_headers(raw, to, kind in LIST_KINDS, mailto=mailbox is not None)
        # What readers see: the subjects as written, a literal '=?' included, non-ASCII decoded.
        assert parsed_subject(mails["welcome_3 (own subject)"][0]) == \
            "Was als Nächstes kommt, und warum =?utf-8?q?das_bleibt?= wie es ist"
        assert parsed_subject(mails["digest (frame)"][0]).startswith("Café culture & the four-day week")
        assert parsed_subject(mails["test copy"][0]).startswith("[Test] Café culture")


def test_the_unsubscribe_header_on_the_wire_works_for_a_one_click_post(tmp_path, sqlite_template, sink):
    with wire_app(tmp_path, sqlite_template, sink) as app:
        db.session.add(Subscriber(email="zoe@example.com", status=Status.CONFIRMED.value))
        db.session.commit()
        zoe = factories.subscriber("zoe@example.com")
        ledger.queue(db.session, "welcome", zoe.id, "welcome:wire")
        db.session.commit()
        sender.deliver_due()
        [raw] = sink.raw_to("zoe@example.com")
        [unsubscribe] = check_headers(raw, "zoe@example.com", True)["list-unsubscribe"]
        path = unsubscribe[1:-1].removeprefix(BASE_URL)
        response = app.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        db.session.expire_all()
        assert factories.subscriber("zoe@example.com").status == Status.UNSUBSCRIBED.value


# --- hostile text: encoded words that hide a line break -------------------------------------------------------

BCC = "=?utf-8?q?Career_Q=26A=0D=0ABcc:_victim@example.net?="


def test_a_feed_title_hiding_a_line_break_is_neutralised_and_the_digest_carries_no_extra_header(
        tmp_path, sqlite_template, sink, feed_server):
    from mailer.models import Post
    from mailer.posts.feeds import fetch_feed

    with wire_app(tmp_path, sqlite_template, sink):
        feed_server.serve(body=(f'<rss version="2.0"><channel><item><title>{BCC}</title>'
                                '<link>https://blog.example.com/bcc/</link></item></channel></rss>').encode())
        fetch_feed(db.session, feed_server.url)
        assert db.session.scalar(select(Post.title)) == "Career Q&A Bcc: victim@example.net"
        db.session.add(Subscriber(email="zoe@example.com", status=Status.CONFIRMED.value))
        db.session.commit()
        digests.create_digest(db.session, post_ids=[db.session.scalar(select(Post.id))])
        db.session.commit()
        sender.deliver_due()

        [received] = sink.handler.messages
        assert received.recipients == ["zoe@example.com"]
        check_headers(received.raw, "zoe@example.com", True)  # no Bcc (nor any other) field was added
        assert b"\r\nBcc:" not in received.raw and parsed_subject(received.raw) == "Career Q&A Bcc: victim@example.net"


@pytest.mark.parametrize("subject", [BCC, "=?utf-8?b?SGkNCkJjYzogdmljdGltQGV4YW1wbGUubmV0?=",
                                     "Hi =?utf-8?q?=E2=80=A8?=Bcc: victim@example.net", "Hi\r\nBcc: victim@example.net"])
def test_the_subject_builder_never_writes_a_line_break_from_the_text_on_any_python(app, subject):
    from mailer.mail import headers
    from mailer.mail.messages import ListMailFrame, Parts, build

    parts = Parts(subject, "text", "<p>html</p>")
    with pytest.raises(ValueError, match="line break"):
        headers.text("Subject", subject)
    with pytest.raises(ValueError, match="line break"):
        build(parts, "ann@example.com", msg_id="<1@mailer.test>")
    with pytest.raises(ValueError, match="line break"):
        ListMailFrame(parts, "newsletter@mailer.test", "List <news.mailer.test>")


def test_text_that_looks_like_an_encoded_word_is_written_so_that_readers_show_it_as_typed():
    from mailer.mail import headers

    raw = headers.text("Subject", "Read =?utf-8?q?this?= as typed")
    assert raw.startswith(b"Subject: =?utf-8?") and b"=?utf-8?q?this?=" not in raw
    assert parsed_subject(raw + b"\r\n") == "Read =?utf-8?q?this?= as typed"
    assert headers.text("Subject", "Plain ASCII, folded at whitespace " * 5).count(b"\r\n ") == 2


def test_a_stored_subject_hiding_a_line_break_is_never_sent(tmp_path, sqlite_template, sink):
    """A digest row written before the checks (or around them): the worker refuses to write the header."""
    from mailer.models import Delivery, Digest

    with wire_app(tmp_path, sqlite_template, sink):
        db.session.add(Subscriber(email="zoe@example.com", status=Status.CONFIRMED.value))
        factories.post()
        digest = digests.create_digest(db.session)
        db.session.commit()
        db.session.execute(update(Digest).where(Digest.id == digest.id).values(subject=BCC))
        db.session.commit()
        sender.deliver_due()

        assert sink.handler.messages == []
        assert "line break" in db.session.scalar(select(Delivery.last_error))


# --- unsubscribing by mail: List-Unsubscribe's mailto: ---------------------------------------------------------

def welcome_to(email: str, sink) -> tuple[int, str]:
    """Send `email` (confirmed) a welcome through SMTP; their id and the mailto address its raw header carries."""
    db.session.add(Subscriber(email=email, status=Status.CONFIRMED.value))
    db.session.commit()
    sub = factories.subscriber(email)
    ledger.queue(db.session, "welcome", sub.id, f"welcome:{sub.id}:mailto")
    db.session.commit()
    sender.deliver_due()
    [raw] = sink.raw_to(email)
    [unsubscribe] = check_headers(raw, email, True, mailto=True)["list-unsubscribe"]
    mailto = re.search(r"<mailto:([^>]+)>", unsubscribe).group(1)
    assert not mailto.startswith("bounces+")  # never the VERP address
    return sub.id, mailto


def a_request(to: str, subject: str = "unsubscribe") -> bytes:
    """What a mail client sends to a mailto: link: a plain message, nothing like a bounce."""
    return (f"From: Zoe <zoe@example.com>\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <req@example.com>\r\n"
            "Auto-Submitted: auto-replied\r\n\r\nPlease take me off the list.\r\n").encode()


def status_of(email: str) -> str:
    db.session.expire_all()
    return factories.subscriber(email).status


def test_a_mail_to_the_mailto_address_through_the_pipe_unsubscribes_and_stops_the_next_digest(
        tmp_path, sqlite_template, sink):
    from mailer.models import MailEvent

    with wire_app(tmp_path, sqlite_template, sink, UNSUBSCRIBE_MAILBOX=MAILBOX) as app:
        sub_id, mailto = welcome_to("zoe@example.com", sink)
        result = app.test_cli_runner().invoke(args=["bounces", "process", "--recipient", mailto],
                                              input=a_request(mailto))
        assert result.exit_code == 0 and f"Unsubscribed subscriber {sub_id}" in result.output
        assert status_of("zoe@example.com") == Status.UNSUBSCRIBED.value
        assert db.session.scalar(select(MailEvent.id)) is None  # a request, not a bounce: no event recorded

        sink.clear()
        factories.post()
        digests.create_digest(db.session)
        db.session.commit()
        sender.deliver_due()
        assert sink.raw_to("zoe@example.com") == []


def test_the_webhook_and_the_headers_alone_lead_to_the_same_unsubscribe(tmp_path, sqlite_template, sink):
    from mailer.api_tokens import create_token

    with wire_app(tmp_path, sqlite_template, sink, UNSUBSCRIBE_MAILBOX=MAILBOX) as app:
        _, zoe = welcome_to("zoe@example.com", sink)
        _, bob = welcome_to("bob@example.com", sink)
        key = create_token(db.session, "mta")
        db.session.commit()
        client = app.test_client()
        response = client.post("/webhooks/dsn", query_string={"recipient": zoe.upper()}, data=a_request(zoe),
                               headers={"Authorization": f"Bearer {key}", "Content-Type": "message/rfc822"})
        assert response.status_code == 200 and "Unsubscribed" in response.json["result"]
        assert status_of("zoe@example.com") == Status.UNSUBSCRIBED.value  # an MTA that upper-cased it: still ours
        # No --recipient: the address in the headers (To, Delivered-To…) says it.
        result = app.test_cli_runner().invoke(args=["bounces", "process"], input=a_request(f"List <{bob}>"))
        assert result.exit_code == 0 and status_of("bob@example.com") == Status.UNSUBSCRIBED.value


def other_signature(address: str) -> str:
    local, _, domain = address.rpartition("@")
    return f"{local[:-1]}{'b' if local[-1] != 'b' else 'c'}@{domain}"


def other_reader(address: str) -> str:
    return re.sub(r"\+(\d+)-", lambda m: f"+{int(m.group(1)) + 1}-", address)


def no_signature(address: str) -> str:
    return re.sub(r"-[a-z2-7]+@", "@", address)


@pytest.mark.parametrize("alter", [other_signature, other_reader, no_signature])
def test_an_unsubscribe_address_whose_signature_does_not_verify_changes_nothing(tmp_path, sqlite_template, sink, alter):
    from mailer.models import MailEvent

    with wire_app(tmp_path, sqlite_template, sink, UNSUBSCRIBE_MAILBOX=MAILBOX) as app:
        _, mailto = welcome_to("zoe@example.com", sink)
        db.session.add(Subscriber(email="bob@example.com", status=Status.CONFIRMED.value))
        db.session.commit()
        forged = alter(mailto)
        assert forged != mailto
        result = app.test_cli_runner().invoke(args=["bounces", "process", "--recipient", forged],
                                              input=a_request(forged))
        assert result.exit_code == 1 and "does not verify" in result.output
        assert status_of("zoe@example.com") == status_of("bob@example.com") == Status.CONFIRMED.value
        assert db.session.scalar(select(MailEvent.id)) is None


def test_a_bounce_to_the_verp_address_is_still_a_bounce_with_the_mailbox_set(tmp_path, sqlite_template, sink):
    from pathlib import Path

    from mailer.models import Delivery

    with wire_app(tmp_path, sqlite_template, sink, UNSUBSCRIBE_MAILBOX=MAILBOX) as app:
        sub_id, _ = welcome_to("zoe@example.com", sink)
        verp = sink.handler.messages[-1].envelope_from
        assert verp.startswith("bounces+")
        dsn = (Path(__file__).parent / "fixtures" / "bounces" / "postfix-hard-bounce.eml").read_text()
        dsn = dsn.replace("{verp}", verp).replace("{email}", "zoe@example.com").encode()
        result = app.test_cli_runner().invoke(args=["bounces", "process", "--recipient", verp], input=dsn)
        assert result.exit_code == 0, result.output
        assert status_of("zoe@example.com") == Status.BOUNCED.value
        assert db.session.scalar(select(Delivery.subscriber_id)) == sub_id


@pytest.mark.parametrize(("value", "error"), [("bounces@example.com", "bounces@"), ("unsubscribe+x@example.com", "no '\\+'"),
                                              ("unsubscribe", "not an address"), ("a@-bad-.com", "not an address")])
def test_the_unsubscribe_mailbox_setting_is_checked_at_start_up(value, error):
    from mailer.config import ConfigError, load

    with pytest.raises(ConfigError, match=error):
        load({"UNSUBSCRIBE_MAILBOX": value, "SECRET_KEY": "x"})
