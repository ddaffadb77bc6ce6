"""The address a call comes from, looking through proxies the server trusts.

Behind the edge every call's peer is the edge itself. Its `x-forwarded-for` names the
client, but anyone can send that header, so it is believed only from a trusted peer, and
read from the right: each trusted hop appended the address it saw, and the first address
that is not a trusted proxy is the client.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from chatbot_server.config import IPNetwork

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

FORWARDED_FOR_KEY = "x-forwarded-for"
_PEER = re.compile(r"^ipv[46]:\[?(?P<address>[^\]]*?)\]?:\d+$")


def peer_address(peer: str) -> str:
    """The IP address of a gRPC peer such as "ipv4:10.0.0.7:51234" or "ipv6:[::1]:5123";
    the peer string itself when it is not an IP peer (a Unix socket, say)."""
    match = _PEER.match(peer)
    return match["address"] if match else peer


def client_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]) -> str:
    """The client's address: the peer's, or, when the peer is a trusted proxy, the rightmost
    forwarded address that is not one."""
    address = peer_address(peer)
    if not _is_trusted(address, trusted):
        return address
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",")]
    for hop in reversed(hops):
        if not _is_address(hop):
            break
        address = hop
        if not _is_trusted(hop, trusted):
            break
    return address


def via_trusted_proxy(
    peer: str, forwarded_for: Sequence[str], trusted: Sequence[IPNetwork]
) -> bool:
    """Whether a trusted proxy forwarded the call for a client of its own."""
    return bool(forwarded_for) and _is_trusted(peer_address(peer), trusted)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _is_trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip: IPAddress = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
