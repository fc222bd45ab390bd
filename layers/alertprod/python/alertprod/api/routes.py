"""The filter management API: routes over the service store, with Powertools' HTTP API resolver.

Every route acts for the user the authorizer named (``requestContext.authorizer.lambda.userId``);
when no authorizer ran (a local server without one) the bearer token is checked here. Each user
sees and changes only their own filters: another user's filter is a 404, as a missing one.
Errors are ``{"error": "..."}`` with a 4xx for anything a client sends (400 malformed, 401 no
valid token, 404 not found, 409 conflict, 413 too large); a 5xx only for our own faults.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, timedelta
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.event_handler.openapi.params import Body, Query

from alertprod.api.models import (
    ExplainRequest,
    ExpressionTrialRequest,
    FilterCreate,
    FilterUpdate,
    RedeliverRequest,
    TrialRequest,
)
from alertprod.api.pages import register_pages
from alertprod.api.precovery_plot import register_light_curve_plot
from alertprod.api.precovery_routes import register_precovery_routes
from alertprod.api.tokens import authenticate
from alertprod.api.views import counters_view, filter_view, iso
from alertprod.api.watchlist_routes import register_watchlist_routes, user_watchlists
from alertprod.delivery.webhook import WebhookUrlError, check_host, check_webhook_url
from alertprod.distribution.archive import AlertArchive
from alertprod.distribution.config import ServiceSettings
from alertprod.distribution.records import FilterRecord, utc_day
from alertprod.distribution.service import FilterService
from alertprod.distribution.store import ServiceStore
from alertprod.distribution.trial import explain_alert, trial_run
from alertprod.errors import ConflictError, FilterError, NotFoundError
from alertprod.filtering.compiler import compile_filter

__all__ = ["ApiContext", "ApiError", "build_api"]


class ApiError(Exception):
    """A client error with its HTTP status."""

    def __init__(self, status: int, message: str, **extra: Any):
        super().__init__(message)
        self.status, self.message, self.extra = status, message, extra


def error_response(status: int, message: str, **extra: Any) -> Response:
    """``{"error": message, ...}`` with ``status``."""
    return Response(status, content_types.APPLICATION_JSON, json.dumps({"error": message, **extra}))


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body), headers=headers)


@dataclass
class ApiContext:
    """What the API needs: storage, the service (redelivery, release), the archive, settings."""

    store: ServiceStore
    service: FilterService
    archive: AlertArchive
    settings: ServiceSettings = field(default_factory=ServiceSettings)
    clock: Callable[[], float] = time.time
    watchlists: dict[str, Any] = field(default_factory=dict)
    watchlist_library: Any = None  # users' own watchlists (alertprod.distribution.watchlists)
    precovery: Any = None  # the precovery job service (alertprod.precovery.jobservice.JobContext)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(x) for x in err.get("loc", ()) if x not in ("body",))
        msg = err.get("msg", "invalid")
        if err.get("type") == "json_invalid":
            return "the body is not valid JSON"
        parts.append(f"{loc}: {msg}" if loc else msg)
    return "; ".join(parts) or "invalid request"


def build_api(ctx: ApiContext) -> APIGatewayHttpResolver:
    """The resolver with every route of the filter API (see docs/distribution.md)."""
    app = APIGatewayHttpResolver(enable_validation=True)
    s = ctx.settings

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response:
        return error_response(400, _validation_message(exc))

    @app.exception_handler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, **exc.extra)

    @app.exception_handler(FilterError)
    def _filter_error(exc: FilterError) -> Response:
        return error_response(400, str(exc), position=exc.position, token=exc.token)

    @app.not_found
    def _not_found(exc: Exception) -> Response:
        return error_response(404, "no such route")

    def user() -> str:
        rc = app.current_event.raw_event.get("requestContext") or {}
        found = ((rc.get("authorizer") or {}).get("lambda") or {}).get("userId")
        if found:
            return str(found)
        found = authenticate(ctx.store, app.current_event.headers.get("authorization"), now=ctx.clock())
        if not found:
            raise ApiError(401, "missing or invalid bearer token")
        return found

    def own(filter_id: str) -> FilterRecord:
        uid = user()
        f = ctx.store.get_filter(filter_id) if len(filter_id) <= 64 else None
        if f is None or f.user_id != uid:
            raise ApiError(404, f"no filter {filter_id[:64]!r}")
        return f

    def check_quota(q: int | None) -> int:
        if q is None:
            return s.default_quota_per_day
        if q > s.max_quota_per_day:
            raise ApiError(400, f"quota_per_day: at most {s.max_quota_per_day}")
        return q

    def check_expiry(days: int | None) -> int:
        days = s.default_expiry_days if days is None else days
        if days > s.max_expiry_days:
            raise ApiError(400, f"expires_days: at most {s.max_expiry_days}")
        return days

    def transports(items: list, old: list[dict] | None = None) -> tuple[list[dict], dict[str, str]]:
        out, secrets_shown = [], {}
        old_secrets = {t["url"]: t["secret"] for t in old or [] if t.get("kind") == "webhook"}
        for k, t in enumerate(items):
            config = t.model_dump()
            if config["kind"] == "webhook":
                try:
                    check_webhook_url(config["url"], s.webhook)
                except WebhookUrlError as exc:
                    raise ApiError(400, f"transports[{k}].{exc}") from exc
                secret = old_secrets.get(config["url"]) or secrets.token_urlsafe(32)
                if config["url"] not in old_secrets:
                    secrets_shown[config["url"]] = secret
                config["secret"] = secret
            if config["kind"] == "vtp":
                try:
                    check_host(config["host"], config["port"], s.webhook, what="VTP host")
                except WebhookUrlError as exc:
                    raise ApiError(400, f"transports[{k}].{exc}") from exc
            if config["kind"] == "email" and not s.email_sender:
                raise ApiError(400, f"transports[{k}]: e-mail delivery is not enabled on this deployment")
            out.append(config)
        return out, secrets_shown

    def compile_or_400(text: str):
        return compile_filter(text, watchlists=user_watchlists(ctx, user(), text))

    @app.post("/api/filters")
    def create_filter(body: Annotated[FilterCreate, Body()]):
        uid = user()
        if len(ctx.store.list_filters(uid)) >= s.max_filters_per_user:
            raise ApiError(409, f"you own {s.max_filters_per_user} filters already (the limit)")
        compiled = compile_or_400(body.expression)
        configs, shown = transports(body.transports)
        now = ctx.clock()
        record = FilterRecord(
            filter_id="f-" + secrets.token_hex(8), user_id=uid, name=body.name,
            expression=body.expression, normalized=compiled.normalized,
            version_hash=compiled.version_hash, version=1, state="active", payload=body.payload,
            transports=configs, quota_per_day=check_quota(body.quota_per_day), created_unix=now,
            precovery=body.precovery.model_dump() if body.precovery else None,
            updated_unix=now, expires_unix=now + check_expiry(body.expires_days) * 86400.0)
        ctx.store.create_filter(record)
        ctx.service.invalidate()
        doc = filter_view(record)
        if shown:
            doc["webhook_secrets"] = shown  # shown once: the store keeps it to sign, the API never shows it again
        return _json(201, doc, {"Location": f"/api/filters/{record.filter_id}"})

    @app.get("/api/filters")
    def list_filters():
        return _json(200, {"filters": [filter_view(f) for f in ctx.store.list_filters(user())]})

    @app.get("/api/filters/<filter_id>")
    def get_filter(filter_id: str):
        return _json(200, filter_view(own(filter_id)))

    @app.get("/api/filters/<filter_id>/versions")
    def versions(filter_id: str):
        own(filter_id)
        return _json(200, {"versions": [{"version": v.version, "expression": v.expression,
                                         "normalized": v.normalized, "version_hash": v.version_hash,
                                         "created_at": iso(v.created_unix)}
                                        for v in ctx.store.filter_versions(filter_id)]})

    def save(old: FilterRecord, new: FilterRecord) -> FilterRecord:
        try:
            ctx.store.update_filter(new, expected_updated_unix=old.updated_unix)
        except ConflictError as exc:
            raise ApiError(409, "the filter changed meanwhile; read it again and retry") from exc
        except NotFoundError as exc:
            raise ApiError(404, f"no filter {old.filter_id!r}") from exc
        ctx.service.invalidate()
        return ctx.store.get_filter(new.filter_id) or new

    @app.patch("/api/filters/<filter_id>")
    def update_filter(filter_id: str, body: Annotated[FilterUpdate, Body()]):
        f = own(filter_id)
        now = max(ctx.clock(), f.updated_unix + 1e-6)
        changes: dict[str, Any] = {"updated_unix": now}
        shown: dict[str, str] = {}
        if body.expression is not None:
            compiled = compile_or_400(body.expression)
            changes["expression"] = body.expression
            if compiled.version_hash != f.version_hash:
                changes.update(normalized=compiled.normalized, version_hash=compiled.version_hash,
                               version=f.version + 1)
        if body.name is not None:
            changes["name"] = body.name
        if body.payload is not None:
            changes["payload"] = body.payload
        if body.transports is not None:
            changes["transports"], shown = transports(body.transports, f.transports)
        if body.quota_per_day is not None:
            changes["quota_per_day"] = check_quota(body.quota_per_day)
        if body.precovery is not None:
            changes["precovery"] = body.precovery.model_dump()
        if body.expires_days is not None:
            changes.update(expires_unix=now + check_expiry(body.expires_days) * 86400.0, expiry_warned=False)
            if f.state == "expired":
                changes["state"] = "active"
        saved = save(f, f.replace(**changes))
        if saved.held_pending and saved.quota_per_day > f.quota_per_day:
            ctx.service.release_held(ctx.clock(), filters=[saved])
            saved = ctx.store.get_filter(filter_id) or saved
        doc = filter_view(saved)
        if shown:
            doc["webhook_secrets"] = shown
        return _json(200, doc)

    def set_state(filter_id: str, state: str) -> Response:
        f = own(filter_id)
        if f.state == "expired":
            raise ApiError(409, "the filter has expired: renew it with PATCH and expires_days")
        if f.state == state:
            return _json(200, filter_view(f))
        return _json(200, filter_view(save(f, f.replace(state=state, updated_unix=max(ctx.clock(), f.updated_unix + 1e-6)))))

    @app.post("/api/filters/<filter_id>/pause")
    def pause(filter_id: str):
        return set_state(filter_id, "paused")

    @app.post("/api/filters/<filter_id>/resume")
    def resume(filter_id: str):
        return set_state(filter_id, "active")

    @app.delete("/api/filters/<filter_id>")
    def delete(filter_id: str):
        own(filter_id)
        ctx.store.delete_filter(filter_id)
        ctx.service.invalidate()
        return Response(204, content_types.APPLICATION_JSON, "")

    def trial(expression: str, nights: int) -> Response:
        if nights > s.max_test_nights:
            raise ApiError(400, f"nights: at most {s.max_test_nights}")
        r = trial_run(expression, ctx.archive, nights=nights, now_unix=ctx.clock(),
                      max_alerts=s.max_test_alerts, watchlists=user_watchlists(ctx, user(), expression))
        return _json(200, {"nights": r.nights, "evaluated": r.evaluated, "matched": r.matched,
                           "cost": r.cost, "elapsed_s": round(r.elapsed_s, 4),
                           "sample_alert_ids": r.sample_alert_ids, "truncated": r.truncated})

    @app.post("/api/filters/test")
    def test_expression(body: Annotated[ExpressionTrialRequest, Body()]):
        user()
        return trial(body.expression, body.nights)

    @app.post("/api/filters/<filter_id>/test")
    def test_filter(filter_id: str, body: Annotated[TrialRequest, Body()]):
        return trial(own(filter_id).expression, body.nights)

    @app.post("/api/filters/explain")
    def explain(body: Annotated[ExplainRequest, Body()]):
        user()
        try:
            out = explain_alert(body.expression, ctx.archive, body.alert_id, visit=body.visit,
                                detector=body.detector,
                                watchlists=user_watchlists(ctx, user(), body.expression))
        except NotFoundError as exc:
            raise ApiError(404, str(exc)) from exc
        return _json(200, out)

    @app.get("/api/filters/<filter_id>/counters")
    def counters(filter_id: str, days: Annotated[int, Query(ge=1, le=31)] = 7):
        f = own(filter_id)
        now = ctx.clock()
        names = [utc_day(now - k * 86400.0) for k in range(days)][::-1]
        return _json(200, counters_view(f, ctx.store.get_counts(filter_id, names), names, now))

    @app.post("/api/filters/<filter_id>/redeliver")
    def redeliver(filter_id: str, body: Annotated[RedeliverRequest, Body()]):
        f = own(filter_id)
        since = body.since if body.since.tzinfo else body.since.replace(tzinfo=UTC)
        if since.timestamp() < ctx.clock() - timedelta(days=30).total_seconds():
            raise ApiError(400, "since: delivery records are kept 30 days")
        r = ctx.service.redeliver(f, since.timestamp())
        return _json(200, {"redelivered": r.redelivered, "failed": r.failed,
                           "delivery_ids": r.delivery_ids[:1000], "truncated": r.truncated,
                           "next_since": iso(r.next_since_unix)})

    register_watchlist_routes(app, ctx, user, ApiError)
    register_precovery_routes(app, ctx, user, ApiError)  # interfaces.md §6
    register_light_curve_plot(app, ctx, user, ApiError)  # the page's plot (docs/precovery-service.md)

    register_pages(app)  # the precovery service's web page, at / (no token)

    @app.get("/api/openapi.json")
    def openapi():
        return Response(200, content_types.APPLICATION_JSON, app.get_openapi_json_schema(
            title="alertprod filter API", version="1",
            description="Per-user alert filters and their delivery (docs/distribution.md).",
            security_schemes={"bearer": HTTPBearer()}, security=[{"bearer": []}]))

    return app
