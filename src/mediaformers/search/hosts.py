"""Which host names are this machine's loopback: the server binds and the client sends tokens only there."""
from __future__ import annotations

import ipaddress
import socket


def is_loopback(host: str) -> bool:
    """localhost (also ``localhost.``), ::1, 127.x.x.x in any form the resolver takes (127.1, ::ffff:127.0.0.1)."""
    name = host.strip("[]").lower()
    if name.rstrip(".") == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(name)
        mapped = getattr(ip, "ipv4_mapped", None)
        return ip.is_loopback or (mapped is not None and mapped.is_loopback)
    except ValueError:
        pass
    try:  # the shorthand forms getaddrinfo accepts without a lookup: 127.1, 0x7f000001
        return ipaddress.IPv4Address(socket.inet_aton(name)).is_loopback
    except OSError:
        return False
