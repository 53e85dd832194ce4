"""`make up`'s closing table lists every address a person uses and where the admin token is."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from infra.local.admin_token import TOKEN_FILE
from infra.local.services import platform_services
from infra.local.urls import admin_token_hint, people_urls
from tidemark.config import Settings


def test_every_service_with_an_http_endpoint_is_in_the_table(tmp_path: Path) -> None:
    settings = Settings()
    listed = {urlsplit(url).port for url, _ in people_urls(settings)}
    served = {
        urlsplit(c.url).port
        for c in platform_services(settings, tmp_path)
        if c.url.startswith("http")
    }
    assert served <= listed
    assert urlsplit(settings.registry.tracking_uri).port in listed


def test_the_admin_token_hint_names_the_file_once_it_exists(tmp_path: Path) -> None:
    assert "TIDEMARK_SERVING_ADMIN_TOKEN" in admin_token_hint(Settings(), tmp_path)
    (tmp_path / TOKEN_FILE).write_text("secret")
    hint = admin_token_hint(Settings(), tmp_path)
    assert str((tmp_path / TOKEN_FILE).resolve()) in hint
    assert "secret" not in hint
