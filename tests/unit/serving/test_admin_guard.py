"""The API refuses an empty admin token anywhere, and the well-known one where others reach it."""

from __future__ import annotations

import pytest
import typer
from pydantic import SecretStr, ValidationError
from typer.testing import CliRunner

from serving.admin_guard import UnsafeAdminTokenError, check_admin_token, is_loopback
from serving.cli import serve
from tidemark.config import get_settings


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_the_default_token_is_fine_on_loopback(host: str) -> None:
    assert is_loopback(host)
    check_admin_token(SecretStr("change-me"), host)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])  # noqa: S104
@pytest.mark.parametrize("token", ["", "  "])
def test_an_empty_token_is_refused_even_on_loopback(host: str, token: str) -> None:
    with pytest.raises(UnsafeAdminTokenError, match="the admin token is empty"):
        check_admin_token(SecretStr(token), host)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])  # noqa: S104
@pytest.mark.parametrize("token", ["change-me", ""])
def test_a_well_known_or_empty_token_is_refused_elsewhere(host: str, token: str) -> None:
    with pytest.raises(UnsafeAdminTokenError, match="TIDEMARK_SERVING_ADMIN_TOKEN"):
        check_admin_token(SecretStr(token), host)


def test_a_real_token_is_fine_anywhere() -> None:
    check_admin_token(SecretStr("a-secret-nobody-knows"), "0.0.0.0")  # noqa: S104


def test_serve_exits_with_the_reason_before_binding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDEMARK_SERVING_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("TIDEMARK_SERVING_HOST", "0.0.0.0")  # noqa: S104
    get_settings.cache_clear()
    try:
        app = typer.Typer()
        app.command()(serve)
        result = CliRunner().invoke(app, [])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "refusing to serve on 0.0.0.0" in result.output


def test_serve_refuses_an_empty_token_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIDEMARK_SERVING_ADMIN_TOKEN", "")
    get_settings.cache_clear()
    try:
        app = typer.Typer()
        app.command()(serve)
        result = CliRunner().invoke(app, [])
    finally:
        get_settings.cache_clear()
    assert result.exit_code != 0
    assert isinstance(result.exception, ValidationError)
    assert "TIDEMARK_SERVING_ADMIN_TOKEN" in str(result.exception)
