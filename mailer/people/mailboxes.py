"""The mailbox behind an address: what the confirmation throttle counts by, so that tagged forms of one mailbox
share one throttle. Only the throttle: the address is stored, shown and mailed exactly as it was typed."""
from __future__ import annotations

# Providers that ignore dots in the local part; googlemail.com is gmail.com under another name.
DOTLESS = {"gmail.com": "gmail.com", "googlemail.com": "gmail.com"}


def mailbox_of(email: str) -> str:
    """`a.b+news@googlemail.com` → `ab@gmail.com`: without its +tag, and for Gmail without dots, lower-cased."""
    local, _, domain = email.strip().lower().rpartition("@")
    if not local:
        return email.strip().lower()
    untagged = local.split("+", 1)[0] or local  # "+x@…" has no tag to drop, only a local part that starts so
    if domain in DOTLESS:
        untagged, domain = untagged.replace(".", "") or untagged, DOTLESS[domain]
    return f"{untagged}@{domain}"
