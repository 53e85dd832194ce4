"""`make up` gives the services a token of the stack's own, unless one is set."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.local.admin_token import TOKEN_FILE, token_file, with_admin_token
from infra.local.components import Component
from infra.local.stack import Stack
from tidemark.config import Settings


@pytest.fixture(autouse=True)
def _no_token_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIDEMARK_SERVING_ADMIN_TOKEN", raising=False)


def test_a_stack_without_a_token_makes_one_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = with_admin_token(Settings(), tmp_path)
    token = settings.serving.admin_token.get_secret_value()
    path = tmp_path / TOKEN_FILE
    assert token_file(Settings(), tmp_path) == path
    assert path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert token != "change-me"
    assert len(token) >= 32


def test_the_token_is_kept_across_restarts_and_differs_between_stacks(tmp_path: Path) -> None:
    first = with_admin_token(Settings(), tmp_path / "a").serving.admin_token
    again = with_admin_token(Settings(), tmp_path / "a").serving.admin_token
    other = with_admin_token(Settings(), tmp_path / "b").serving.admin_token
    assert first == again
    assert first != other


def test_a_token_that_is_set_wins_and_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIDEMARK_SERVING_ADMIN_TOKEN", "from-the-environment")
    settings = Settings()
    assert token_file(settings, tmp_path) is None
    assert with_admin_token(settings, tmp_path).serving.admin_token == SecretStr(
        "from-the-environment"
    )
    assert not (tmp_path / TOKEN_FILE).exists()


def test_the_services_of_the_stack_receive_its_token(tmp_path: Path) -> None:
    def one_service(settings: Settings, state: Path) -> list[Component]:
        return [
            Component(
                name="api",
                command=["true"],
                url="-",
                check=lambda: None,
                service=True,
                sections=("serving",),
            )
        ]

    stack = Stack(Settings(), state=tmp_path, services=one_service)
    api = next(c for c in stack.components() if c.name == "api")
    assert api.env["TIDEMARK_SERVING_ADMIN_TOKEN"] == (tmp_path / TOKEN_FILE).read_text().strip()
