"""The page at ``GET /``: try the server from a browser.

Plain HTML, JavaScript and CSS shipped in the package (``static/``): no build step, nothing
fetched from another site, so it works on a machine without internet. The page and its
files hold no data and are served without a key; everything they call needs one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STATIC_DIR = Path(__file__).with_name("static")
PAGE_PATHS = ("/",)
STATIC_PREFIX = "/ui/"  # the page's own files

# The page runs only its own script and talks only to this server.
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def add_page(app: Any) -> None:
    """``GET /`` (index.html) and the static files under ``/ui/``."""
    from fastapi.responses import FileResponse
    from starlette.staticfiles import StaticFiles

    index = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=_HEADERS)

    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC_DIR), name="ui")
