"""A real SMTP server in the test process (aiosmtpd), as GNU Mailman's tests do: mail is received, not mocked."""
from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from aiosmtpd.controller import Controller


@dataclass
class Received:
    envelope_from: str
    recipients: list[str]
    message: EmailMessage
    raw: bytes = b""  # the message as it came over SMTP (dots unstuffed), for tests of the bytes themselves
    at: float = field(default_factory=time.monotonic)  # when the server took it, to measure a sending pace


@dataclass
class SinkHandler:
    """Collects messages; tests can make it refuse recipients for good (5xx) or for a while (4xx)."""

    messages: list[Received] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> full reply, e.g. "550 5.1.1 no such user"
    temporary_failures: int = 0
    temporary_reply: str = "451 4.3.0 try again later"
    delay: float = 0.0  # seconds per message, to make a digest take long enough to pause or kill
    slow_replies: int = 0  # this many RCPT commands are answered only after slow_seconds: a server that stalls
    slow_seconds: float = 3.0
    pipelining: bool = True  # announce PIPELINING (RFC 2920), as Postfix and most servers do
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        # aiosmtpd reads commands one after another from its stream, so pipelined ones are served in order.
        session.host_name = hostname
        return responses[:-1] + ["250-PIPELINING", responses[-1]] if self.pipelining else responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        with self.lock:
            stall, self.slow_replies = self.slow_replies > 0, max(0, self.slow_replies - 1)
        if stall:
            await asyncio.sleep(self.slow_seconds)
        with self.lock:
            if address.lower() in self.refuse:
                return self.refuse[address.lower()]
            if self.temporary_failures > 0:
                self.temporary_failures -= 1
                return self.temporary_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.delay:
            await asyncio.sleep(self.delay)
        msg = BytesParser(policy=policy.default).parsebytes(envelope.content)
        with self.lock:
            self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), msg, envelope.original_content))
        return "250 2.0.0 queued"


class SmtpSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, **controller_options):
        self.handler = SinkHandler()
        self._options = controller_options
        self.controller = Controller(self.handler, hostname=host, port=port or _free_port(), **controller_options)
        self.host, self.port = host, self.controller.port

    @property
    def url(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    def start(self) -> "SmtpSink":
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def restart(self) -> None:
        """Come back on the same port after `stop()`, keeping what was received."""
        self.controller = Controller(self.handler, hostname=self.host, port=self.port, **self._options)
        self.controller.start()

    def clear(self) -> None:
        with self.handler.lock:
            self.handler.messages.clear()
            self.handler.refuse.clear()
            self.handler.temporary_failures = 0
            self.handler.temporary_reply = SinkHandler.temporary_reply
            self.handler.delay = 0.0
            self.handler.slow_replies = 0

    def to(self, address: str) -> list[EmailMessage]:
        with self.handler.lock:
            return [r.message for r in self.handler.messages if address in r.recipients]

    def raw_to(self, address: str) -> list[bytes]:
        """The bytes of each message to `address`, as received."""
        with self.handler.lock:
            return [r.raw for r in self.handler.messages if address in r.recipients]

    def wait_for(self, address: str, subject_contains: str = "", count: int = 1, timeout: float = 30) -> list[EmailMessage]:
        """Mail to `address` whose subject contains the text; fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [m for m in self.to(address) if subject_contains in m["Subject"]]
            if len(found) >= count:
                return found
            time.sleep(0.1)
        got = [m["Subject"] for m in self.to(address)]
        raise AssertionError(f"no {count} mail(s) to {address} with {subject_contains!r} within {timeout}s; got {got}")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
