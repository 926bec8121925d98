"""Where a reader reads their mail: the webmail of their address's domain, and the address as our pages show it."""
from __future__ import annotations

from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import quote


@dataclass(frozen=True)
class Mailbox:
    name: str
    url: str


# domain → (provider, inbox URL, search URL with {sender} or None where the provider has no search link)
_GMAIL = ("Gmail", "https://mail.google.com/mail/u/0/", "https://mail.google.com/mail/u/0/#search/from%3A{sender}+in%3Aanywhere")
_OUTLOOK = ("Outlook", "https://outlook.live.com/mail/0/", None)
_YAHOO = ("Yahoo Mail", "https://mail.yahoo.com/", None)
_ICLOUD = ("iCloud Mail", "https://www.icloud.com/mail/", None)
_PROTON = ("Proton Mail", "https://mail.proton.me/", None)
_GMX_COM = ("GMX", "https://www.gmx.com/", None)
_GMX_DE = ("GMX", "https://www.gmx.net/", None)
PROVIDERS = {
    **dict.fromkeys(("gmail.com", "googlemail.com"), _GMAIL),
    **dict.fromkeys(("outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.fr", "live.com", "live.co.uk", "msn.com"),
                    _OUTLOOK),
    **dict.fromkeys(("yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com", "rocketmail.com"), _YAHOO),
    **dict.fromkeys(("icloud.com", "me.com", "mac.com"), _ICLOUD),
    **dict.fromkeys(("proton.me", "protonmail.com", "protonmail.ch", "pm.me"), _PROTON),
    **dict.fromkeys(("gmx.com", "gmx.us", "gmx.co.uk"), _GMX_COM),
    **dict.fromkeys(("gmx.net", "gmx.de", "gmx.at", "gmx.ch"), _GMX_DE),
    "web.de": ("WEB.DE", "https://web.de/", None),
    "aol.com": ("AOL Mail", "https://mail.aol.com/", None),
    "zoho.com": ("Zoho Mail", "https://mail.zoho.com/", None),
    "fastmail.com": ("Fastmail", "https://app.fastmail.com/", None),
    **dict.fromkeys(("yandex.com", "yandex.ru"), ("Yandex Mail", "https://mail.yandex.com/", None)),
}


def mailbox_for(address: str, mail_from: str) -> Mailbox | None:
    """The webmail that reads `address`, opened on a search for our sender where it can be; None for a domain we
    do not know (a company's own mail, say)."""
    provider = PROVIDERS.get(address.rpartition("@")[2].lower())
    if provider is None:
        return None
    name, inbox, search = provider
    sender = parseaddr(mail_from)[1]
    return Mailbox(name, search.format(sender=quote(sender, safe="")) if search and sender else inbox)


def masked(address: str) -> str:
    """An address as a page shows it to whoever holds the page: its first letter and its domain (a…@example.com)."""
    local, at, domain = address.partition("@")
    return f"{local[:1]}…@{domain}" if at else "…"
