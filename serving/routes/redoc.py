"""GET /redoc: the ReDoc page, from the server's own files and nothing else.

ReDoc 2's script (shipped in the fastapi-offline wheel, served under the docs assets) draws an
"API docs by Redocly" footer whose logo it always fetches from cdn.redoc.ly; no option turns it
off. The page's Content-Security-Policy lets it load only from the server (and the blob: worker
ReDoc searches in), so the browser never makes that request: the image fails, and ReDoc then
leaves the logo out. The page is the same offline and online.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from starlette.responses import HTMLResponse

# ReDoc styles its page with styled-components, which inject <style> elements at run time.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "img-src 'self' data:",
        "style-src 'self' 'unsafe-inline'",
        "worker-src 'self' blob:",
    ]
)


def add_redoc_page(app: FastAPI, path: str, assets_url: str) -> None:
    """Serve ReDoc at ``path`` with its script and favicon from ``assets_url``."""
    assert app.openapi_url is not None

    @app.get(path, include_in_schema=False)
    async def redoc_page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{assets_url}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{assets_url}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page
