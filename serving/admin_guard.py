"""The rule for the admin token: a well-known or empty one only where nobody else can connect."""

from __future__ import annotations

import ipaddress
import socket

from pydantic import SecretStr

# The default of tidemark.config: known to anyone who has read the code.
WELL_KNOWN_TOKENS = frozenset({"", "change-me"})


class UnsafeAdminTokenError(ValueError):
    """The server would expose admin actions with a token that protects nothing."""


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a).is_loopback for a in addresses)


def check_admin_token(token: SecretStr, host: str) -> None:
    """Raise ``UnsafeAdminTokenError`` for a well-known or empty token on a non-loopback host."""
    if token.get_secret_value().strip() in WELL_KNOWN_TOKENS and not is_loopback(host):
        raise UnsafeAdminTokenError(
            f"refusing to serve on {host}: the admin token is empty or the well-known default "
            "'change-me', and anyone who can reach this address could call the admin actions. "
            "Set TIDEMARK_ADMIN_TOKEN to a secret (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`) or bind to 127.0.0.1."
        )
