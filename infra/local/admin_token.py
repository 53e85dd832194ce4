"""The admin token of a local stack: random, kept in its state folder, readable by its owner only.

``make up`` gives the services it starts a token of their own unless
``TIDEMARK_SERVING_ADMIN_TOKEN`` is set (in the environment or ``.env``), so that the API's admin
actions never run with a token everybody knows. The token is made once per state folder and
reused on every later start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from tidemark.config import Settings

TOKEN_FILE = "admin-token"  # noqa: S105 (a file name, not a secret)


def token_file(settings: Settings, state: Path) -> Path | None:
    """Where the stack keeps its generated token; None when the settings name one."""
    return None if "admin_token" in settings.serving.model_fields_set else state / TOKEN_FILE


def with_admin_token(settings: Settings, state: Path) -> Settings:
    """``settings`` carrying the stack's token: the one set, or the state folder's (made once)."""
    path = token_file(settings, state)
    if path is None:
        return settings
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created with its final mode, so that the token is never readable by others.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as out:
            out.write(secrets.token_urlsafe(32) + "\n")
    token = path.read_text().strip()
    return settings.override(serving_admin_token=SecretStr(token))
