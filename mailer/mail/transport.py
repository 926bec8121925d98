"""Where messages go: an SMTP server named by SMTP_URL, or .eml files in the local outbox."""
from __future__ import annotations

import itertools
import logging
import re
import smtplib
import ssl
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timezone
from email.message import EmailMessage
from pathlib import Path
from typing import NamedTuple, Union
from urllib.parse import parse_qs, unquote, urlsplit

from . import dkim
from .messages import Outgoing, wire
from .pacing import THROTTLE_CODES

log = logging.getLogger(__name__)
Signer = Callable[[bytes], bytes]
Accepted = Callable[[int, str], None] | None  # told of each mail the server accepted, as its reply is read
_DOT_AT_LINE_START = re.compile(rb"(?m)^\.")  # SMTP transparency (RFC 5321 4.5.2): a leading dot is doubled


def _unsigned(data: bytes) -> bytes:
    return data


class TemporaryFailure(Exception):
    """Try again later: a 4xx reply, a dropped connection, a timeout."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class PermanentFailure(Exception):
    """The server refused this recipient for good (5xx)."""


class SenderRejected(PermanentFailure):
    """The server refuses *us* (our sender address, our credentials): no recipient is at fault."""


class Transport:
    """Where the outbox sends: `send` one mail, `send_all` several, in order (one by one, unless a transport
    can do better)."""

    def send(self, msg: Outgoing | EmailMessage, sender: str, recipient: str) -> str:
        raise NotImplementedError

    def send_all(self, mails: Iterable[tuple[Outgoing | EmailMessage, str, str]],
                 accepted: Accepted = None) -> list[Outcome]:
        """An outcome per mail taken from `mails`, in order: the server's reply (accepted), the failure, or None
        for a mail taken but not tried. `mails` is read one mail at a time, and no further once the server
        refused us or asked us to slow down (421, 454). `accepted(n, reply)` is called for the nth mail the
        moment the server's reply accepting it is read, before anything more goes to the server."""
        outcomes: list[Outcome] = []
        for msg, sender, recipient in mails:
            try:
                outcomes.append(self.send(msg, sender, recipient))
            except Exception as exc:  # this mail's outcome: the outbox decides what it means
                outcomes.append(exc)
                if _halts(exc):
                    break
            else:
                if accepted is not None:
                    accepted(len(outcomes) - 1, outcomes[-1])
        return outcomes

    def close(self) -> None:
        pass


class SMTPTransport(Transport):
    """One connection reused across a batch, reopened once when the server has dropped it."""

    def __init__(self, url: str, timeout: float = 30, sign: Signer = _unsigned):
        parts = urlsplit(url)
        self.implicit_tls = parts.scheme == "smtps"
        self.starttls = parse_qs(parts.query).get("starttls", ["0"])[0] in ("1", "true", "yes")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or (465 if self.implicit_tls else 25)
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.timeout = timeout
        self.sign = sign
        self._smtp: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        # Built only for TLS: loading the CA bundle costs ~30 ms, once per connection.
        context = ssl.create_default_context() if self.implicit_tls or self.starttls else None
        if self.implicit_tls:
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=context)
        else:
            smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls(context=context)
            if self.username:
                smtp.login(self.username, self.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def send(self, msg: Outgoing | EmailMessage, sender: str, recipient: str) -> str:
        """Send to exactly one envelope recipient; returns the server's reply, or raises the failure."""
        [outcome] = self.send_all([(msg, sender, recipient)])
        if isinstance(outcome, str):
            return outcome
        raise outcome or TemporaryFailure("the SMTP server closed the connection before the message went")

    def _send_signed(self, data: bytes, sender: str, recipient: str, international: bool) -> str:
        """One mail, one command at a time (what SMTPUTF8 needs, and servers without PIPELINING)."""
        options = ("SMTPUTF8", "BODY=8BITMIME") if international else ()
        for attempt in (1, 2):
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                if international:
                    self._require_smtputf8()
                return self._transaction(sender, recipient, data, options)
            except smtplib.SMTPServerDisconnected:
                self.close()
                if attempt == 2:
                    raise TemporaryFailure("the SMTP server closed the connection") from None
            except (smtplib.SMTPSenderRefused, smtplib.SMTPAuthenticationError) as exc:
                self.close()
                raise SenderRejected(f"the SMTP server refused us, not the recipient: {exc.smtp_code} "
                                     f"{exc.smtp_error!r}") from None
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                self._reset()
                raise _classify(code, reply) from None
            except smtplib.SMTPResponseException as exc:
                self._reset()
                raise _classify(exc.smtp_code, exc.smtp_error) from None
            except (OSError, smtplib.SMTPException) as exc:
                self.close()
                raise TemporaryFailure(f"cannot reach the SMTP server {self.host}:{self.port}: {exc}") from None
        raise AssertionError("unreachable")

    def send_all(self, mails: Iterable[tuple[Outgoing | EmailMessage, str, str]],
                 accepted: Accepted = None) -> list[Outcome]:
        """As Transport.send_all; a mail is also not tried (None) when the connection ended before its turn.

        When the server offers PIPELINING, each mail's content and end of data go in one write with the next
        mail's MAIL, RCPT and DATA (one round trip a mail instead of two), and the mail after that is taken from
        `mails` while the server answers: whatever makes the messages works while the server does.
        """
        outcomes: list[Outcome] = _Outcomes(accepted)
        source = self._signing(mails, outcomes)
        for attempt in (1, 2):
            try:
                if self._smtp is None:
                    self._smtp = self._connect()
                self._smtp.ehlo_or_helo_if_needed()
            except (OSError, smtplib.SMTPException):
                self.close()
                break  # one by one: each mail meets the failure to connect, as on its own
            if not self._smtp.has_extn("pipelining"):
                break
            try:
                self._stream(source, outcomes)
                return outcomes
            except _LostBeforeAnyReply as lost:
                self.close()  # a connection the server had dropped while idle: once more on a new one
                source = itertools.chain(lost.taken, source)
        self._one_by_one(source, outcomes)
        return outcomes

    def _signing(self, mails: Iterable, outcomes: _Outcomes) -> Iterator[_Signed]:
        """The mails to send, signed, one at a time; one that cannot be signed gets that failure as its outcome."""
        for msg, sender, recipient in mails:
            msg = msg if isinstance(msg, Outgoing) else wire(msg)
            outcomes.append(None)
            try:
                data = self.sign(msg.data)
            except Exception as exc:  # this message cannot be signed: it waits, the others go
                outcomes[-1] = exc
                continue
            yield _Signed(len(outcomes) - 1, data, sender, recipient,
                          msg.international or not f"{sender}{recipient}".isascii())

    def _one_by_one(self, source: Iterator[_Signed], outcomes: list[Outcome]) -> None:
        for mail in source:
            if self._send_one(mail, outcomes):
                return

    def _send_one(self, mail: _Signed, outcomes: list[Outcome]) -> bool:
        """Send one mail on its own (SMTPUTF8 needs smtplib's own MAIL handling); True when the rest must wait."""
        try:
            outcomes[mail.n] = self._send_signed(mail.data, mail.sender, mail.recipient, mail.international)
        except Exception as exc:
            outcomes[mail.n] = exc
            return _halts(exc)
        return False

    def _stream(self, source: Iterator[_Signed], outcomes: list[Outcome]) -> None:
        smtp = self._smtp
        size = smtp.does_esmtp and smtp.has_extn("size")
        pending, replied = None, False  # pending: the mail whose DATA got 354; its content goes with the next write
        mail = next(source, None)
        taken = [mail]  # until the server first answers: what to send again on a new connection if this one is dead
        try:
            while mail is not None:
                if mail.international:
                    if pending is not None:
                        smtp.send(_content(pending.data))
                        closed, pending, replied = self._data_ended(pending, outcomes), None, True
                        if closed:
                            return
                    if self._send_one(mail, outcomes) or self._smtp is None:
                        return
                    smtp, replied, mail = self._smtp, True, next(source, None)
                    continue
                option = f" size={len(mail.data)}" if size else ""
                smtp.send((_content(pending.data) if pending is not None else b"")
                          + f"MAIL FROM:<{mail.sender}>{option}\r\nRCPT TO:<{mail.recipient}>\r\nDATA\r\n".encode())
                following = next(source, None)  # made while the server reads and answers
                taken.append(following)
                if pending is not None:
                    closed, pending, replied = self._data_ended(pending, outcomes), None, True
                    if closed:
                        return
                replies = _envelope_replies(smtp)
                replied = True
                refusal = _refusal(replies)
                if refusal is None:
                    pending = mail
                else:
                    outcomes[mail.n] = refusal
                    if replies[-1][0] == 421 or isinstance(refusal, SenderRejected):
                        self.close()
                        return
                    self._abandon(replies)
                    if _halts(refusal):
                        return
                mail = following
            if pending is not None:
                smtp.send(_content(pending.data))
                self._data_ended(pending, outcomes)
                pending = None
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            if not replied:
                raise _LostBeforeAnyReply([m for m in taken if m is not None]) from exc
            if pending is not None:  # its content went, its reply did not come: sent again later, maybe twice
                outcomes[pending.n] = TemporaryFailure(f"the connection to the SMTP server {self.host}:{self.port} "
                                                       f"was lost before it confirmed the message: {exc}")

    def _data_ended(self, mail: _Signed, outcomes: list[Outcome]) -> bool:
        """The reply to `mail`'s end of data, as its outcome; True when the server is closing the connection."""
        outcomes[mail.n] = _end_of_data(*self._smtp.getreply())
        if _closing(outcomes[mail.n]):
            self.close()
            return True
        return False

    def _transaction(self, sender: str, recipient: str, data: bytes, options: tuple[str, ...]) -> str:
        """MAIL, RCPT, DATA as smtplib's sendmail does them, but keeping the server's reply to the message.

        The reply ("250 2.0.0 Ok: queued as 4Fx…") names the mail in the server's own logs: worth a log line.
        """
        smtp = self._smtp
        smtp.ehlo_or_helo_if_needed()
        esmtp = list(options)
        if smtp.does_esmtp and smtp.has_extn("size"):
            esmtp.append(f"size={len(data)}")
        code, reply = smtp.mail(sender, esmtp)
        if code != 250:
            self.close() if code == 421 else smtp.rset()
            raise smtplib.SMTPSenderRefused(code, reply, sender)
        code, reply = smtp.rcpt(recipient)
        if code not in (250, 251):
            self.close() if code == 421 else smtp.rset()
            raise smtplib.SMTPRecipientsRefused({recipient: (code, reply)})
        code, reply = smtp.data(data)
        if code != 250:
            self.close() if code == 421 else smtp.rset()
            raise smtplib.SMTPDataError(code, reply)
        return f"{code} {reply.decode(errors='replace')}"

    def _abandon(self, replies: list[tuple[int, bytes]]) -> None:
        """After a refusal in a pipelined envelope: end an accepted DATA with an empty message, then RSET."""
        if replies[-1][0] == 421:
            self.close()
            return
        if replies[-1][0] == 354:
            self._smtp.send(b".\r\n")
            self._smtp.getreply()
        self._smtp.rset()

    def _require_smtputf8(self) -> None:
        self._smtp.ehlo_or_helo_if_needed()
        if not self._smtp.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError("the SMTP server does not support SMTPUTF8, which this address needs")

    def _reset(self) -> None:
        try:
            if self._smtp is not None:
                self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.quit()
            except (OSError, smtplib.SMTPException):
                self._smtp.close()  # QUIT failed on a dead connection: the socket still needs closing
            self._smtp = None


Outcome = Union[str, Exception, None]


class _Outcomes(list):
    """The outcomes of send_all, which tell `accepted` of each reply accepting a mail as it is set."""

    def __init__(self, accepted: Accepted):
        super().__init__()
        self.accepted = accepted

    def __setitem__(self, n, outcome) -> None:
        super().__setitem__(n, outcome)
        if self.accepted is not None and isinstance(outcome, str):
            self.accepted(n, outcome)


class _Signed(NamedTuple):
    n: int  # its place in the list given to send_all
    data: bytes
    sender: str
    recipient: str
    international: bool


class _LostBeforeAnyReply(Exception):
    """The connection failed before the server answered anything: none of the mails `taken` was delivered."""

    def __init__(self, taken: list[_Signed]):
        super().__init__("connection lost before any reply")
        self.taken = taken


def _halts(failure: Exception) -> bool:
    """After this, the rest of the mails wait: the server refuses us, or asks us to slow down."""
    return isinstance(failure, SenderRejected) or (
        isinstance(failure, TemporaryFailure) and failure.code in THROTTLE_CODES)


def _closing(outcome: Outcome) -> bool:
    return isinstance(outcome, TemporaryFailure) and outcome.code == 421


def _envelope_replies(smtp: smtplib.SMTP) -> list[tuple[int, bytes]]:
    """The replies to MAIL, RCPT and DATA; fewer when the server closes the connection (421)."""
    replies = []
    for _ in range(3):
        replies.append(smtp.getreply())
        if replies[-1][0] == 421:
            break
    return replies


def _refusal(replies: list[tuple[int, bytes]]) -> Exception | None:
    """What the envelope's replies mean for the mail: None when it may go (MAIL 250, RCPT 250/251, DATA 354)."""
    (mail, mail_reply), rest = replies[0], replies[1:]
    if mail != 250:
        if 500 <= mail < 600:
            return SenderRejected(f"the SMTP server refused us, not the recipient: {mail} {mail_reply!r}")
        return _classify(mail, mail_reply)
    (rcpt, rcpt_reply), rest = rest[0], rest[1:]
    if rcpt not in (250, 251):
        return _classify(rcpt, rcpt_reply)
    (go, go_reply), = rest
    return None if go == 354 else _classify(go, go_reply)


def _content(data: bytes) -> bytes:
    """A message's content on the wire: dots at line starts doubled, ended by a line holding one dot."""
    body = _DOT_AT_LINE_START.sub(b"..", data) if data.startswith(b".") or b"\n." in data else data
    return body + (b"" if body.endswith(b"\r\n") else b"\r\n") + b".\r\n"


def _end_of_data(code: int, reply: bytes) -> Outcome:
    return f"{code} {reply.decode(errors='replace')}" if code == 250 else _classify(code, reply)


def _classify(code: int, reply: bytes | str) -> Exception:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else str(reply)
    if 500 <= code < 600:
        return PermanentFailure(f"{code} {text}")
    return TemporaryFailure(f"{code} {text}", code)


class OutboxTransport(Transport):
    """Writes each message to instance/outbox/ for reading in the browser."""

    def __init__(self, directory: str | Path, sign: Signer = _unsigned):
        self.directory = Path(directory)
        self.sign = sign

    def send(self, msg: Outgoing | EmailMessage, sender: str, recipient: str) -> str:
        msg = msg if isinstance(msg, Outgoing) else wire(msg)
        self.directory.mkdir(parents=True, exist_ok=True)
        name = msg.message_id.strip("<>").split("@")[0]
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%f")
        path = self.directory / f"{stamp}-{name}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(self.sign(msg.data))
        tmp.replace(path)  # readers never see half a message
        return f"250 written to {path.name}"


def open_transport(config: dict) -> Transport:
    sign = (lambda data: dkim.sign(data, config)) if dkim.enabled(config) else _unsigned
    if config.get("SMTP_URL"):
        return SMTPTransport(config["SMTP_URL"], timeout=config.get("SMTP_TIMEOUT", 30), sign=sign)
    return OutboxTransport(config["OUTBOX_DIR"], sign=sign)
