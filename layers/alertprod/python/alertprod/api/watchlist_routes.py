"""The watchlist routes of the API: a user's own sky lists, referenced by name from their filters.

``PUT /api/watchlists/{name}`` uploads (or replaces) a watchlist as CSV (``text/csv``, header
``ra,dec[,radius][,id]``), JSON (:class:`~alertprod.api.models.WatchlistUpload`) or VOTable;
a file too large for one request (10⁶ entries) is PUT to a pre-signed URL
(``POST .../upload``) and taken with ``POST .../complete``; ``GET`` lists them, reads one, or
downloads its entries as CSV; ``DELETE`` removes one unless a
filter of the owner still names it (409). Another user's watchlist is a 404, as a missing one.
Filters reach them through ``in_watchlist('name')`` (:func:`user_watchlists`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import ValidationError

from alertprod.api.models import WatchlistUpload, WatchlistUploadDone, WatchlistView
from alertprod.api.views import iso
from alertprod.distribution.records import WatchlistRecord
from alertprod.distribution.watchlists import (
    WATCHLIST_NAME,
    WatchlistInputError,
    check_entries,
    parse_watchlist,
    referenced_watchlists,
)
from alertprod.filtering.watch import Watchlist

__all__ = ["register_watchlist_routes", "user_watchlists", "watchlist_view"]

_UPLOAD_TYPES = "text/csv, application/json or application/x-votable+xml"


def watchlist_view(w: WatchlistRecord) -> dict[str, Any]:
    """The JSON document of a watchlist (:class:`~alertprod.api.models.WatchlistView`)."""
    return {"name": w.name, "entries": w.entries, "max_radius_arcsec": w.max_radius_arcsec,
            "sha256": w.sha256, "source_format": w.source_format,
            "created_at": iso(w.created_unix), "updated_at": iso(w.updated_unix)}


def user_watchlists(ctx: Any, user_id: str, expression: str) -> dict[str, Watchlist] | None:
    """The deployment's shared watchlists plus the user's own that ``expression`` names (theirs win)."""
    out = dict(ctx.watchlists or {})
    library = getattr(ctx, "watchlist_library", None)
    if library is not None:
        for name in referenced_watchlists(expression):
            record = ctx.store.get_watchlist(user_id, name)
            if record is not None:
                out[name] = library.load(record)
    return out or None


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body), headers=dict(headers or {}))


def register_watchlist_routes(app: APIGatewayHttpResolver, ctx: Any, user: Callable[[], str],
                              error: Callable[..., Exception]) -> None:
    """Add the watchlist routes to ``app``.

    Parameters
    ----------
    app : APIGatewayHttpResolver
        The API's resolver.
    ctx : ApiContext
        Its ``watchlist_library`` keeps the lists (without one every route answers 404).
    user : callable
        The caller's user id (raises the API's 401 error when there is none).
    error : callable
        ``error(status, message)``: the API's client-error exception.
    """
    s = ctx.settings

    def library():
        if getattr(ctx, "watchlist_library", None) is None:
            raise error(404, "watchlists are not enabled on this deployment")
        return ctx.watchlist_library

    def checked_name(name: str) -> str:
        if not WATCHLIST_NAME.fullmatch(name):
            raise error(400, f"name {name[:70]!r}: letters, digits, _ . - (1 to 64)")
        return name

    def own(name: str) -> WatchlistRecord:
        uid = user()
        library()
        record = ctx.store.get_watchlist(uid, name) if WATCHLIST_NAME.fullmatch(name) else None
        if record is None:
            raise error(404, f"no watchlist {name[:64]!r}")
        return record

    @app.get("/api/watchlists", summary="Your watchlists",
             responses={200: {"description": "Your watchlists",
                              "content": {"application/json": {"model": list[WatchlistView]}}}})
    def list_watchlists():
        uid = user()
        library()
        return _json(200, {"watchlists": [watchlist_view(w) for w in ctx.store.list_watchlists(uid)]})

    @app.put("/api/watchlists/<name>", summary="Upload or replace a watchlist",
             description=f"Body: {_UPLOAD_TYPES}. CSV and VOTable: columns ra, dec (deg), optional "
                         "radius (arcsec) and id; JSON: WatchlistUpload. 201 when new, 200 when replaced.",
             responses={200: {"description": "Replaced", "content": {"application/json": {"model": WatchlistView}}},
                        201: {"description": "Created", "content": {"application/json": {"model": WatchlistView}}}})
    def put_watchlist(name: str,
                      radius_arcsec: Annotated[float | None, Query(gt=0, le=3600,
                                                                  description="radius of rows without one")] = None):
        event = app.current_event
        body = event.decoded_body if event.decoded_body is not None else ""
        data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        return save(name, data, event.headers.get("content-type") or "", radius_arcsec)

    def save(name: str, data: bytes, content_type: str, radius_arcsec: float | None) -> Response:
        uid = user()
        lib = library()
        checked_name(name)
        existing = ctx.store.get_watchlist(uid, name)
        if existing is None and len(ctx.store.list_watchlists(uid)) >= s.max_watchlists_per_user:
            raise error(409, f"you own {s.max_watchlists_per_user} watchlists already (the limit)")
        if not data:
            raise error(400, f"the body is empty: send {_UPLOAD_TYPES}")
        record = lib.put(uid, name, parse(data, content_type, radius_arcsec), ctx.clock())
        ctx.service.invalidate()
        return _json(200 if existing else 201, watchlist_view(record),
                     None if existing else {"Location": f"/api/watchlists/{name}"})

    def parse(data: bytes, content_type: str, radius_arcsec: float | None):
        kind = content_type.split(";")[0].strip().lower()
        try:
            if kind not in ("application/json", ""):
                return parse_watchlist(data, kind, default_radius_arcsec=radius_arcsec or 1.0,
                                       max_entries=s.max_watchlist_entries)
            try:
                upload = WatchlistUpload.model_validate_json(data)
            except ValidationError as exc:
                err = exc.errors()[0]
                if err.get("type") == "json_invalid":
                    raise error(400, "the body is not valid JSON") from exc
                where = ".".join(str(x) for x in err.get("loc", ()))
                raise error(400, f"{where}: {err.get('msg', 'invalid')}") from exc
            e, d = upload.entries, radius_arcsec or upload.default_radius_arcsec
            return check_entries([x.ra for x in e], [x.dec for x in e], [d if x.radius is None else x.radius for x in e],
                                 [x.id or "" for x in e], "json", s.max_watchlist_entries)
        except WatchlistInputError as exc:
            raise error(413 if "holds at most" in str(exc) else 400, str(exc)) from exc

    @app.post("/api/watchlists/<name>/upload", summary="A URL to upload a large watchlist file to",
              description="Returns a pre-signed URL: PUT the file there (CSV, JSON or VOTable, up to "
                          "max_bytes), then POST /api/watchlists/{name}/complete with its upload_id.")
    def upload_url(name: str):
        uid = user()
        lib = library()
        checked_name(name)
        try:
            upload_id, url = lib.upload_url(uid, name, s.watchlist_upload_url_s)
        except WatchlistInputError as exc:
            raise error(404, str(exc)) from exc
        return _json(201, {"upload_id": upload_id, "upload_url": url, "method": "PUT",
                           "expires_in_s": s.watchlist_upload_url_s, "max_bytes": s.max_watchlist_upload_bytes,
                           "complete": f"/api/watchlists/{name}/complete"})

    @app.post("/api/watchlists/<name>/complete", summary="Make an uploaded file the watchlist",
              responses={200: {"description": "Replaced", "content": {"application/json": {"model": WatchlistView}}},
                         201: {"description": "Created", "content": {"application/json": {"model": WatchlistView}}}})
    def complete_upload(name: str, body: Annotated[WatchlistUploadDone, Body()]):
        uid = user()
        checked_name(name)
        try:
            data = library().take_upload(uid, name, body.upload_id, max_bytes=s.max_watchlist_upload_bytes)
        except WatchlistInputError as exc:
            raise error(413 if "at most" in str(exc) else 400, str(exc)) from exc
        return save(name, data, body.content_type, body.radius_arcsec)

    @app.get("/api/watchlists/<name>", summary="One of your watchlists",
             responses={200: {"description": "The watchlist",
                              "content": {"application/json": {"model": WatchlistView}}}})
    def get_watchlist(name: str):
        return _json(200, watchlist_view(own(name)))

    @app.get("/api/watchlists/<name>/entries", summary="A watchlist's entries as CSV")
    def get_entries(name: str):
        columns = library().entries(own(name))
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["ra", "dec", "radius", "id"])
        writer.writerows(zip(*(columns[c] for c in ("ra", "dec", "radius", "id")), strict=True))
        return Response(200, "text/csv", out.getvalue())

    @app.delete("/api/watchlists/<name>", summary="Delete a watchlist no filter of yours names")
    def delete_watchlist(name: str):
        record = own(name)
        users = [f.filter_id for f in ctx.store.list_filters(record.user_id)
                 if name in referenced_watchlists(f.expression)]
        if users:
            raise error(409, f"watchlist {name!r} is used by filter(s) {', '.join(users)}: change or "
                             "delete them first")
        library().delete(record)
        ctx.service.invalidate()
        return Response(204, content_types.APPLICATION_JSON, "")
