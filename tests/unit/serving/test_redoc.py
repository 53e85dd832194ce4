"""The ReDoc page lets the browser load only from the server (serving.routes.redoc)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_the_redoc_page_lets_the_browser_load_only_from_the_server(client: TestClient) -> None:
    # ReDoc's script fetches its footer logo from cdn.redoc.ly whatever its options say.
    policy = client.get("/redoc").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert "https:" not in policy
    assert all("*" not in sources for sources in directives.values())
