"""Which client an address is, and which network it belongs to: what the rate limits and the cap count by.

One IPv6 subscriber line is handed a whole /64 (often a /48 or /56), and picks a new address in it at will: a
limit per IPv6 address limits nothing. So a client is an IPv4 address or an IPv6 /IPV6_PREFIX, and a network,
for the share of the confirmation cap, an IPv4 /NETWORK_IPV4_PREFIX or an IPv6 /NETWORK_IPV6_PREFIX.
"""
from __future__ import annotations

import ipaddress

from flask import current_app, request


def client_of(ip: str | None) -> str | None:
    """The client an address counts as: an IPv4 address itself, an IPv6 address its /IPV6_PREFIX."""
    return _within(ip, "", "IPV6_PREFIX")


def network_of(ip: str | None) -> str | None:
    """The network an address belongs to, for the share of the hourly confirmation cap."""
    return _within(ip, "NETWORK_IPV4_PREFIX", "NETWORK_IPV6_PREFIX")


def request_client() -> str:
    """Flask-Limiter's key: the client of this request (its address as ProxyFix left it)."""
    return client_of(request.remote_addr) or "unknown"


def _within(ip: str | None, ipv4_setting: str, ipv6_setting: str) -> str | None:
    """`ip` as the network of the given prefix length, written like 2001:db8::/64; None or text kept as it is."""
    try:
        address = ipaddress.ip_address((ip or "").split("%", 1)[0])
    except ValueError:
        return ip or None  # not an address (a test client, a unix socket): itself
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:192.0.2.1, as a dual-stack socket shows an IPv4 client
    setting = ipv6_setting if address.version == 6 else ipv4_setting
    if not setting:
        return str(address)
    prefix = current_app.config[setting]  # checked at start-up (config._networks)
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    return str(address) if prefix == address.max_prefixlen else str(network)

