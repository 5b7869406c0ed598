"""`--http HOST:PORT` parsing and the loopback rule for `--no-auth` (no heavy imports)."""
from __future__ import annotations

import ipaddress


class ServeError(ValueError):
    """The HTTP server cannot start with these options."""


def parse_hostport(value: str) -> tuple[str, int]:
    v = value.strip()
    if v.startswith("["):
        host, _, rest = v[1:].partition("]")
        port_s = rest.lstrip(":")
    else:
        host, sep, port_s = v.rpartition(":")
        if not sep:
            raise ServeError(f"--http expects HOST:PORT (e.g. 127.0.0.1:8765), got {value!r}")
    try:
        port = int(port_s)
    except ValueError:
        raise ServeError(f"--http {value!r}: port {port_s!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ServeError(f"--http {value!r}: port must be 0-65535")
    if not host:
        raise ServeError(f"--http {value!r}: give a host, e.g. 127.0.0.1:{port}")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
