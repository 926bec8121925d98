"""The SMTP transport against real servers: plain, STARTTLS with login, implicit TLS, and a server that restarts."""
from __future__ import annotations

import ssl
from email.message import EmailMessage

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mailer.mail.transport import PermanentFailure, SenderRejected, SMTPTransport, TemporaryFailure
from tests.smtp_sink import SinkHandler, SmtpSink, _free_port


def message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "newsletter@mailer.test", to, "hello"
    msg.set_content("hello")
    return msg


def only_ann(server, session, envelope, mechanism, auth_data):
    ok = auth_data.login == b"ann" and auth_data.password == b"s3cret:/@"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls(monkeypatch, tmp_path):
    """A throwaway CA the client trusts (through SSL_CERT_FILE, as an operator would) and a server certificate."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    return server_context


def test_plain_smtp_reuses_one_connection_for_a_batch(closing):
    sink = SmtpSink().start()
    try:
        transport = closing(SMTPTransport(sink.url))
        # The server's own reply comes back, for the log line that ties our delivery to its queue id.
        assert transport.send(message("r@example.com"), "newsletter@mailer.test", "r@example.com") == "250 2.0.0 queued"
        for n in range(3):
            transport.send(message(f"r{n}@example.com"), "newsletter@mailer.test", f"r{n}@example.com")
        first = transport._smtp
        transport.send(message("r4@example.com"), "newsletter@mailer.test", "r4@example.com")
        assert transport._smtp is first
        transport.close()
        assert len(sink.handler.messages) == 5
        assert all(len(r.recipients) == 1 for r in sink.handler.messages)
    finally:
        sink.stop()


def test_starttls_with_login(tls, closing):
    sink = SmtpSink(tls_context=tls, require_starttls=True, authenticator=only_ann, auth_require_tls=True).start()
    try:
        transport = closing(SMTPTransport(f"smtp://ann:s3cret%3A%2F%40@127.0.0.1:{sink.port}?starttls=1"))
        transport.send(message("tls@example.com"), "newsletter@mailer.test", "tls@example.com")
        transport.close()
        assert sink.to("tls@example.com")
        wrong = closing(SMTPTransport(f"smtp://ann:wrong@127.0.0.1:{sink.port}?starttls=1"))
        with pytest.raises(PermanentFailure):
            wrong.send(message("tls@example.com"), "newsletter@mailer.test", "tls@example.com")
        wrong.close()
    finally:
        sink.stop()


def test_implicit_tls(tls, closing):
    sink = SmtpSink(ssl_context=tls).start()
    try:
        transport = closing(SMTPTransport(f"smtps://127.0.0.1:{sink.port}"))
        transport.send(message("smtps@example.com"), "newsletter@mailer.test", "smtps@example.com")
        transport.close()
        assert sink.to("smtps@example.com")
    finally:
        sink.stop()


@pytest.mark.parametrize("mails", [["b@example.com"], ["b@example.com", "c@example.com"]], ids=["send", "send_all"])
def test_a_connection_the_server_dropped_is_replaced_and_each_mail_goes_once(mails, closing):
    port = _free_port()
    sink = SmtpSink(port=port).start()
    transport = closing(SMTPTransport(f"smtp://127.0.0.1:{port}"))
    try:
        transport.send(message("a@example.com"), "newsletter@mailer.test", "a@example.com")
    finally:
        sink.stop()
    sink = SmtpSink(port=port).start()  # the old connection is dead; the next send must not fail for it
    try:
        if len(mails) == 1:
            assert transport.send(message(mails[0]), "newsletter@mailer.test", mails[0]) == "250 2.0.0 queued"
        else:
            assert transport.send_all([(message(r), "newsletter@mailer.test", r) for r in mails]) == [
                "250 2.0.0 queued"] * len(mails)
        assert sorted(r.recipients[0] for r in sink.handler.messages) == mails
    finally:
        transport.close()
        sink.stop()


def test_a_server_that_is_down_is_a_temporary_failure(closing):
    transport = closing(SMTPTransport(f"smtp://127.0.0.1:{_free_port()}", timeout=2))
    with pytest.raises(TemporaryFailure, match="cannot reach the SMTP server"):
        transport.send(message("x@example.com"), "newsletter@mailer.test", "x@example.com")


@pytest.mark.parametrize("pipelining", [True, False])
def test_refusals_leave_the_connection_ready_for_the_next_mail_with_and_without_pipelining(pipelining, monkeypatch, closing):
    import smtplib

    sink = SmtpSink().start()
    sink.handler.pipelining = pipelining
    one_command_at_a_time = []
    original_mail = smtplib.SMTP.mail
    monkeypatch.setattr(smtplib.SMTP, "mail", lambda self, *a, **k: one_command_at_a_time.append(1) or original_mail(self, *a, **k))
    try:
        transport = closing(SMTPTransport(sink.url))
        sink.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"
        with pytest.raises(PermanentFailure, match="550"):
            transport.send(message("gone@example.com"), "newsletter@mailer.test", "gone@example.com")
        sink.handler.temporary_failures = 1
        with pytest.raises(TemporaryFailure, match="451"):
            transport.send(message("later@example.com"), "newsletter@mailer.test", "later@example.com")
        sink.handler.temporary_failures, sink.handler.temporary_reply = 1, "421 4.7.0 too many messages, slow down"
        with pytest.raises(TemporaryFailure, match="421") as throttled:
            transport.send(message("slow@example.com"), "newsletter@mailer.test", "slow@example.com")
        assert throttled.value.code == 421
        body = message("dots@example.com")
        body.set_content("a line\n.starts with a dot\n.\nand the end")
        assert transport.send(body, "newsletter@mailer.test", "dots@example.com").startswith("250")
        transport.close()
        [received] = sink.to("dots@example.com")
        assert received.get_content().replace("\r\n", "\n") == "a line\n.starts with a dot\n.\nand the end\n"
        assert [r.recipients for r in sink.handler.messages] == [["dots@example.com"]]
        assert bool(one_command_at_a_time) is not pipelining  # pipelined: MAIL never sent on its own
    finally:
        sink.stop()


# --- several mails at once: send_all ----------------------------------------------------------------------

SENDER = "newsletter@mailer.test"


def window(*recipients: str) -> list[tuple[EmailMessage, str, str]]:
    return [(message(r), SENDER, r) for r in recipients]


def writes_counted(monkeypatch) -> list[bytes]:
    import smtplib

    written: list[bytes] = []
    original = smtplib.SMTP.send
    monkeypatch.setattr(smtplib.SMTP, "send", lambda self, s: written.append(s) or original(self, s))
    return written


def test_a_window_goes_in_one_write_a_mail_when_the_server_pipelines(monkeypatch, closing):
    sink = SmtpSink().start()
    written = writes_counted(monkeypatch)
    try:
        transport = closing(SMTPTransport(sink.url))
        dotted = message("dots@example.com")
        dotted.set_content(".a line that starts with a dot\n.\nand the end")
        mails = window("a@example.com", "b@example.com", "c@example.com") + [(dotted, SENDER, "dots@example.com")]
        outcomes = transport.send_all(mails)
        assert outcomes == ["250 2.0.0 queued"] * 4
        writes = [w for w in written if isinstance(w, bytes)]  # smtplib's own commands (EHLO, QUIT) are str
        # Each write after the first carries the previous mail's content and end of data with the next envelope;
        # the last content goes on its own.
        assert len(writes) == 5 and all(w.endswith(b"DATA\r\n") and w.count(b"MAIL FROM") == 1 for w in writes[:4])
        assert all(b"\r\n.\r\nMAIL FROM" in w for w in writes[1:4]) and writes[4].endswith(b"\r\n.\r\n")
        assert [r.recipients for r in sink.handler.messages] == [["a@example.com"], ["b@example.com"],
                                                                 ["c@example.com"], ["dots@example.com"]]
        [received] = sink.to("dots@example.com")
        assert received.get_content().replace("\r\n", "\n") == ".a line that starts with a dot\n.\nand the end\n"
        assert transport.send_all(window("e@example.com")) == ["250 2.0.0 queued"]  # the connection is still good
        transport.close()
    finally:
        sink.stop()


@pytest.fixture(params=[True, False], ids=["pipelining", "one command at a time"])
def either_sink(request):
    """The test server, announcing PIPELINING and not."""
    sink = SmtpSink().start()
    sink.handler.pipelining = request.param
    yield sink
    sink.stop()


def test_refusals_in_a_window_fail_their_own_mail_only(either_sink, closing):
    transport = closing(SMTPTransport(either_sink.url))
    either_sink.handler.refuse["gone@example.com"] = "550 5.1.1 no such user"
    either_sink.handler.refuse["full@example.com"] = "452 4.2.2 mailbox full"
    outcomes = transport.send_all(window("a@example.com", "gone@example.com", "full@example.com", "b@example.com"))
    assert outcomes[0] == outcomes[3] == "250 2.0.0 queued"
    assert isinstance(outcomes[1], PermanentFailure) and "550" in str(outcomes[1])
    assert isinstance(outcomes[2], TemporaryFailure) and outcomes[2].code == 452
    assert sorted(r.recipients[0] for r in either_sink.handler.messages) == ["a@example.com", "b@example.com"]
    transport.close()


def test_a_slow_down_reply_leaves_the_rest_of_the_window_untried(either_sink, closing):
    transport = closing(SMTPTransport(either_sink.url))
    transport.send_all(window("first@example.com"))
    either_sink.handler.temporary_failures = 1
    either_sink.handler.temporary_reply = "421 4.7.0 too many messages, slow down"
    outcomes = transport.send_all(window("a@example.com", "b@example.com", "c@example.com"))
    assert isinstance(outcomes[0], TemporaryFailure) and outcomes[0].code == 421
    # The rest is not tried: not even taken, or taken (made) and handed back without counting an attempt.
    assert len(outcomes) <= 3 and all(outcome is None for outcome in outcomes[1:])
    assert sorted(r.recipients[0] for r in either_sink.handler.messages) == ["first@example.com"]
    assert transport.send_all(window("d@example.com", "e@example.com")) == ["250 2.0.0 queued"] * 2
    transport.close()


def test_a_refused_sender_stops_the_window(closing):
    class RefusesOurSender(SinkHandler):
        async def handle_MAIL(self, server, session, envelope, address, mail_options):
            return "553 5.7.1 sender address rejected"

    handler = RefusesOurSender()
    controller = Controller(handler, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        transport = closing(SMTPTransport(f"smtp://127.0.0.1:{controller.port}"))
        outcomes = transport.send_all(window("a@example.com", "b@example.com"))
        assert isinstance(outcomes[0], SenderRejected) and outcomes[1:] in ([], [None]) and handler.messages == []
        transport.close()
    finally:
        controller.stop()


def test_the_next_mail_is_made_while_the_server_answers_the_one_before(monkeypatch, closing):
    sink = SmtpSink().start()
    events = []
    written = writes_counted(monkeypatch)

    def made_one_at_a_time():
        for r in ("a@example.com", "b@example.com", "c@example.com"):
            events.append((f"made {r}", sum(isinstance(w, bytes) for w in written)))
            yield message(r), SENDER, r

    try:
        transport = closing(SMTPTransport(sink.url))
        assert transport.send_all(made_one_at_a_time()) == ["250 2.0.0 queued"] * 3
        # b is made after a's envelope went out (one write), c after b's went with a's content (two writes).
        assert events == [("made a@example.com", 0), ("made b@example.com", 1), ("made c@example.com", 2)]
        transport.close()
    finally:
        sink.stop()


def test_a_mail_that_needs_smtputf8_goes_on_its_own_within_a_pipelined_window(closing):
    sink = SmtpSink(enable_SMTPUTF8=True).start()
    try:
        transport = closing(SMTPTransport(sink.url))
        outcomes = transport.send_all(window("a@example.com", "jürgen@exämple.com", "b@example.com"))
        assert outcomes == ["250 2.0.0 queued"] * 3
        assert [r.recipients[0] for r in sink.handler.messages] == ["a@example.com", "jürgen@exämple.com",
                                                                   "b@example.com"]
        transport.close()
    finally:
        sink.stop()


def test_a_window_to_a_server_that_is_down_fails_each_mail_for_a_later_try(closing):
    transport = closing(SMTPTransport(f"smtp://127.0.0.1:{_free_port()}", timeout=2))
    outcomes = transport.send_all(window("a@example.com", "b@example.com"))
    assert all(isinstance(o, TemporaryFailure) and "cannot reach" in str(o) for o in outcomes)
