"""The precovery service's web page, served by the API function: ``GET /`` and ``GET /static/*``.

The page (:mod:`alertprod.web`: one HTML file, a stylesheet and a few ES modules) is public —
it holds no data; every call it makes to ``/api/`` carries the user's bearer token. On AWS the
template routes ``GET /`` and ``GET /static/{proxy+}`` to the API function without the
authorizer; :data:`alertprod.api.handler.PUBLIC_PATHS` lets them past the handler's own check.
Only the files of the package's ``web`` folder are served, by exact name: a request for any
other name (``..``, a folder, a file that is not there) is a 404.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response

__all__ = ["PAGE_FILES", "STATIC_PREFIX", "is_page_path", "register_pages"]

#: Files of the page, by name, with their media types.
PAGE_FILES: dict[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "api.js": "text/javascript; charset=utf-8",
    "form.js": "text/javascript; charset=utf-8",
    "jobs.js": "text/javascript; charset=utf-8",
    "stamps.js": "text/javascript; charset=utf-8",
}
STATIC_PREFIX = "/static/"

#: The page's own origin for scripts, styles and calls; blob: for stamps and downloads;
#: inline styles for the light-curve SVG that matplotlib writes.
_SECURITY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' blob: data:; connect-src 'self'; object-src 'none'; "
                               "base-uri 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def is_page_path(path: str | None) -> bool:
    """True for the paths the page is served on (no token needed)."""
    return path == "/" or (path or "").startswith(STATIC_PREFIX)


@cache
def _read(name: str) -> str:
    return resources.files("alertprod.web").joinpath(name).read_text(encoding="utf-8")


def _file(name: str, cache_control: str) -> Response:
    if name not in PAGE_FILES:
        return Response(404, "application/json", '{"error": "no such file"}')
    return Response(200, PAGE_FILES[name], _read(name),
                    headers={"Cache-Control": cache_control, **_SECURITY})


def register_pages(app: APIGatewayHttpResolver) -> None:
    """Add ``GET /`` (the page) and ``GET /static/<name>`` (its files) to ``app``."""

    @app.get("/", include_in_schema=False)
    def page():
        return _file("index.html", "no-cache")

    @app.get("/static/<name>", include_in_schema=False)
    def static(name: str):
        # short: a deployment's new page reaches browsers within minutes
        return _file(name, "public, max-age=300")
