"""The rule for the admin token: never empty, the well-known one only where nobody else connects."""

from __future__ import annotations

import ipaddress
import socket

from pydantic import SecretStr

# The default of tidemark.config: known to anyone who has read the code.
WELL_KNOWN_TOKEN = "change-me"  # noqa: S105 (the published default, refused off loopback)


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
    """Raise ``UnsafeAdminTokenError`` for an empty token anywhere (it would let a request that
    carries no token through), and for the well-known one on a non-loopback host."""
    secret = token.get_secret_value().strip()
    if not secret:
        raise UnsafeAdminTokenError(
            "refusing to serve: the admin token is empty, which a request without a token "
            "would match. Set TIDEMARK_SERVING_ADMIN_TOKEN to a secret (e.g. `python -c "
            "'import secrets; print(secrets.token_urlsafe(32))'`)."
        )
    if secret == WELL_KNOWN_TOKEN and not is_loopback(host):
        raise UnsafeAdminTokenError(
            f"refusing to serve on {host}: the admin token is the well-known default "
            "'change-me', and anyone who can reach this address could call the admin actions. "
            "Set TIDEMARK_SERVING_ADMIN_TOKEN to a secret (e.g. `python -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'`) or bind to 127.0.0.1."
        )
