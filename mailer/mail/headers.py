"""Header fields as they go on the wire, written here rather than by the email package.

The email package folds a long value it has no parser for (List-Unsubscribe) into RFC 2047 encoded words, which
RFC 2369 readers cannot use, and before Python 3.11.10 / 3.12.5 it wrote out a line break decoded from an encoded
word in a subject. Here every field ends in CRLF, folds only at whitespace and keeps each line within 998 octets;
only free text (a subject, a display name) is ever encoded, and then all of it, so nothing in it can end a line
or be read as an encoded word.
"""
from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.utils import parseaddr

FOLD = 78  # RFC 5322 2.1.1: a line SHOULD stay within 78 characters…
LIMIT = 998  # …and MUST stay within 998
# What a mail client may take for an encoded word (decode_header's own pattern, within one line).
_ENCODED_WORD = re.compile(r"=\?[^?\r\n]*\?[bBqQ]\?[^\r\n]*?\?=")
_ATOMS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+( [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")  # a phrase as it is
_URI = re.compile(r'[\x21\x23-\x2b\x2d-\x3b\x3d\x3f-\x7e]+\Z')  # printable ASCII but space, '"', ',', '<', '>'
_CONTROL = re.compile("[\x00-\x1f\x7f\x85\u2028\u2029]")  # what must not be in a header: it may end the line


def decoded(value: str) -> str:
    """`value` as a mail client shows it: each RFC 2047 encoded word decoded (leniently, as clients do)."""
    return _ENCODED_WORD.sub(_decode_word, value) if "=?" in value else value


def _decode_word(match: re.Match) -> str:
    try:
        [(data, charset)] = decode_header(match.group())
    except (HeaderParseError, ValueError):  # bad base64: clients show it as it is
        return match.group()
    if isinstance(data, str):
        return data
    charset = (charset or "ascii").partition("*")[0]  # RFC 2231 adds a language after '*'
    try:
        return data.decode(charset, errors="replace")
    except LookupError:
        return data.decode("latin-1")  # an unknown charset: its bytes, line breaks included, still count


def _refuse_controls(name: str, value: str) -> None:
    if _CONTROL.search(value):
        raise ValueError(f"{name} contains a line break or a control character")


def field(name: str, words: list[str]) -> bytes:
    """`Name: word word …` with CRLF, folded between words only; each word is written as it is (a space in one,
    as in a quoted local part, is never a fold)."""
    line, lines = f"{name}:", []
    for n, word in enumerate(words):
        _refuse_controls(name, word)
        if not word.strip():
            raise ValueError(f"{name}: a header word is empty")
        if n and len(line.encode()) + 1 + len(word.encode()) > FOLD:
            lines.append(line)
            line = ""  # the next line starts with the space before the word: folding whitespace
        line += " " + word
    lines.append(line)
    if any(len(piece.encode()) > LIMIT for piece in lines):
        raise ValueError(f"{name} has a part too long for one header line ({LIMIT} octets)")
    return ("\r\n".join(lines) + "\r\n").encode()


def text(name: str, value: str) -> bytes:
    """An unstructured field (Subject): plain ASCII as it is, anything else as encoded words, all of it.

    Text that holds '=?' is encoded too, so a reader shows it as typed instead of decoding it into something else.
    """
    _refuse_controls(name, value)
    _refuse_controls(name, decoded(value))  # the caller checks already (has_line_break); this holds on any Python
    words = value.split()
    if value.isascii() and "=?" not in value and all(len(w) <= LIMIT - len(name) - 3 for w in words):
        return field(name, words)
    return field(name, _encoded(name, value))


def _encoded(name: str, value: str) -> list[str]:
    """`value` as RFC 2047 encoded words (UTF-8), each short enough for a line of its own."""
    return Header(" ".join(value.split()), "utf-8", maxlinelen=FOLD, header_name=name).encode(linesep="\r\n").split("\r\n ")


def phrase(name: str, value: str) -> list[str]:
    """A display name (RFC 5322 phrase): atoms as they are, other ASCII quoted, the rest as encoded words."""
    value = " ".join(value.split())
    _refuse_controls(name, value)
    if not value:
        return []
    if _ATOMS.match(value) and "=?" not in value:
        return value.split()
    if value.isascii() and "=?" not in value:
        return ('"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"').split(" ")
    return _encoded(name, value)


def mailbox(name: str, value: str) -> list[str]:
    """'Name <address>' (From) as header words; an address alone stays alone."""
    display, address = parseaddr(value)
    if not address:
        raise ValueError(f"{name}: {value!r} holds no address")
    return [*phrase(name, display), f"<{address}>"] if display else [address]


def list_id(value: str) -> list[str]:
    """List-Id (RFC 2919): an optional phrase, then <list-label.namespace>."""
    display, label = parseaddr(value) if "<" in value else ("", value.strip())
    if not _URI.match(label):
        raise ValueError(f"List-Id: {value!r} is not like 'Name <newsletter.example.com>'")
    return [*phrase("List-Id", display), f"<{label}>"]


def list_unsubscribe(url: str, mailto: str | None = None) -> bytes:
    """List-Unsubscribe (RFC 2369): <https URL>, and <mailto:address> when there is one, on a line of its own
    when both do not fit in one. (Written directly: the digest frame calls this for every recipient.)"""
    line = f"List-Unsubscribe: <{_uri(url)}>"
    if mailto:
        second = f"<mailto:{_uri(mailto)}>"
        line += f", {second}" if len(line) + 2 + len(second) <= FOLD else f",\r\n {second}"
    if any(len(piece) > LIMIT for piece in line.split("\r\n")):
        raise ValueError(f"List-Unsubscribe: the link is too long for one header line ({LIMIT} octets)")
    return (line + "\r\n").encode("ascii")


def _uri(uri: str) -> str:
    if not _URI.match(uri):
        raise ValueError(f"List-Unsubscribe: {uri[:100]!r} cannot be written in angle brackets")
    return uri


_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]{1,900}>\Z")


def message_id(value: str) -> bytes:
    """Message-ID: <id@domain>, one word, as it is."""
    if not _MESSAGE_ID.match(value):
        raise ValueError(f"Message-ID: {value[:100]!r} is not like <id@domain>")
    return f"Message-ID: {value}\r\n".encode("ascii")
