"""People or machines: the one rule that says whether a click or an open of a digest was a person's.

Corporate mail filters (Microsoft Defender Safe Links, Mimecast, Proofpoint, Barracuda) fetch the links of a mail
within seconds of its delivery, often every link at once, sometimes with HEAD requests, from data-centre addresses;
Gmail's image proxy and Apple Mail Privacy Protection fetch the images of every mail that arrives, read or not.
An event is a machine's when any of these holds (`verdict`, in this order; the first names the reason):

- it hit the mail's hidden link (`hidden`): an empty, invisible anchor no person sees or can click; every click
  of that mail within BURST_SECONDS of it is a machine's too;
- it was a HEAD request (`head`): a browser following a link asks for the page, a scanner checking it may not;
- its user agent is a scanner's, an image proxy's or an HTTP library's, or it has none (`agent`);
- it came from a network listed in SCANNER_NETWORKS (`network`), e.g. a scanner vendor's ranges;
- it came less than SCANNER_SECONDS after the mail was delivered (`soon`: Delivery.sent_at);
- several distinct links of one mail were hit within BURST_SECONDS (`burst`): each of them is a machine's.

The risk is a person taken for a machine, and machine events never make a reader engaged: a segment of engaged
readers, a resend to those who did not click, a sunset of the unengaged all count people only. So every rule errs
towards a person. SCANNER_SECONDS is short (a person notified at once still needs seconds to open a mail, find a
link and press it); a burst needs two *distinct* links, since a double click repeats one link; the user agents are
scanners' own names, never a browser's. Opens err the other way on purpose: Gmail's proxy fetches the image when a
person opens the mail too, and Apple's proxy ("Mozilla/5.0", nothing more) fetches it whether or not anyone does,
so neither can tell a reader; their opens count as machines', and clicks remain the signal to trust.
"""
from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import NamedTuple

BURST_SECONDS = 1.0  # "at once": distinct links of one mail hit this close together are a machine's
AGENT_LENGTH = 300  # what is kept of a user agent

# Names scanners, proxies and HTTP libraries give themselves (matched anywhere, ignoring case); none is a browser's.
_MACHINE_AGENT = re.compile("|".join((
    r"GoogleImageProxy", r"ggpht\.com", r"YahooMailProxy", r"Gmail-content-sampling",
    r"Barracuda", r"Mimecast", r"Proofpoint", r"Microsoft Office Existence Discovery", r"BingPreview",
    r"HeadlessChrome", r"PhantomJS", r"python-requests", r"aiohttp", r"python-urllib", r"Go-http-client",
    r"okhttp", r"libwww-perl", r"\bcurl/", r"\bWget/", r"\bJava/", r"Apache-HttpClient", r"node-fetch", r"axios/",
    r"Googlebot", r"bingbot", r"Slackbot", r"facebookexternalhit", r"Twitterbot", r"LinkedInBot", r"Discordbot",
)), re.IGNORECASE)
# User agents that are a machine's as a whole: Apple Mail Privacy Protection's proxy sends exactly "Mozilla/5.0";
# Gmail's prefetcher a browser from 2015 with "Mozilla/5.0" again at the end.
_MACHINE_AGENT_EXACT = frozenset((
    "Mozilla/5.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/42.0.2311.135 "
    "Safari/537.36 Edge/12.246 Mozilla/5.0",
))

REASONS = {  # what the console and the export say of each reason
    "hidden": "hit the hidden link no person sees",
    "head": "a HEAD request, as link checkers send",
    "agent": "a scanner's, image proxy's or HTTP library's user agent, or none",
    "network": "from a network listed in SCANNER_NETWORKS",
    "soon": "within seconds of delivery",
    "burst": "several links of the mail at once",
}


def machine_agent(user_agent: str | None) -> bool:
    agent = (user_agent or "").strip()
    return not agent or agent in _MACHINE_AGENT_EXACT or _MACHINE_AGENT.search(agent) is not None


def from_scanner_network(address: str | None, config: Mapping) -> bool:
    """Whether the client's address is in one of SCANNER_NETWORKS (checked in the request: nothing is stored)."""
    networks = _networks(tuple(config.get("SCANNER_NETWORKS") or ()))
    if not networks or not address:
        return False
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip.version == n.version and ip in n for n in networks)


@lru_cache(maxsize=8)
def _networks(written: tuple[str, ...]) -> tuple:
    return tuple(ipaddress.ip_network(n, strict=False) for n in written)


def seconds_after(at: datetime, delivered_at: datetime | None) -> int | None:
    """Whole seconds from the mail's delivery to the event; None while the delivery time is unknown."""
    return None if delivered_at is None else max(0, int((at - delivered_at).total_seconds()))


def verdict(config: Mapping, method: str | None, user_agent: str | None, network: bool, after: int | None,
            links_at_once: int = 1, hidden: bool = False) -> str | None:
    """None for a person's event; otherwise the reason (a key of REASONS) it is a machine's.

    An event recorded without evidence (before there was any, `method` None) is judged by what is known.
    """
    if hidden:
        return "hidden"
    if method == "HEAD":
        return "head"
    if method is not None and machine_agent(user_agent):
        return "agent"
    if network:
        return "network"
    if after is not None and after < config.get("SCANNER_SECONDS", 5):
        return "soon"
    if links_at_once > 1:
        return "burst"
    return None


def near(at: datetime, times: Sequence[datetime]) -> bool:
    """Whether `at` is within BURST_SECONDS of one of `times` (a hit of the mail's hidden link)."""
    return any(abs((at - t).total_seconds()) <= BURST_SECONDS for t in times)


def links_at_once(at: datetime, hits: Sequence[tuple[int, datetime]]) -> int:
    """How many distinct links of one mail (`hits`: post id and time) were hit within BURST_SECONDS of `at`."""
    return len({post for post, when in hits if abs((when - at).total_seconds()) <= BURST_SECONDS})


class Evidence(NamedTuple):
    """What a request to a tracked link says of who made it, as the redirect and the pixel keep it."""
    method: str
    user_agent: str | None
    network: bool  # from a network in SCANNER_NETWORKS


def evidence(method: str, user_agent: str | None, address: str | None, config: Mapping) -> Evidence:
    return Evidence(method, (user_agent or "")[:AGENT_LENGTH] or None, from_scanner_network(address, config))
