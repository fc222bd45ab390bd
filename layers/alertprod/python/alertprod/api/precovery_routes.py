"""The precovery service's routes (interfaces.md §6) on the filter API's resolver and authorizer.

``POST /api/precovery/jobs`` submits (201, ``Location``, the job document), ``GET`` lists the
caller's jobs or reads one (``?wait=S``: UWS ``WAIT``; UWS XML for ``Accept:
application/xml``), ``POST .../phase`` with ``PHASE=ABORT`` (form-encoded or JSON) aborts,
``DELETE`` removes, ``.../results/lightcurve?format=csv|json|votable`` and
``.../results/stamps`` download. Request bodies are pydantic models, so the OpenAPI document
describes them; the job service (:mod:`alertprod.precovery.jobservice`) checks every value
again and is the authority. Errors are ``{"error": ...}``: 400 malformed, 401 no token, 404
not the caller's job (as a missing one), 413 too large, 429 with ``Retry-After`` over quota.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from pydantic import BaseModel, ConfigDict, Field

from alertprod.errors import NotFoundError, PrecoveryError, StorageError
from alertprod.precovery.jobservice import (
    QuotaError,
    abort_job,
    delete_job,
    get_job,
    job_document,
    list_jobs,
    read_result,
    submit_job,
    wait_job,
)
from alertprod.precovery.uws import job_xml

__all__ = ["JobSubmission", "register_precovery_routes"]

_STRICT = ConfigDict(extra="forbid")
_JOB_ID = r"^[A-Za-z0-9_\-]{1,64}$"


class PositionIn(BaseModel):
    """A sky position (ICRS, degrees)."""

    model_config = _STRICT
    ra: float = Field(ge=0, lt=360)
    dec: float = Field(ge=-90, le=90)


class PositionTarget(PositionIn):
    """One position."""

    kind: Literal["position"]


class PositionsTarget(BaseModel):
    """Several positions in a small region (at most 20 % more images than their centroid)."""

    model_config = _STRICT
    kind: Literal["positions"]
    positions: list[PositionIn] = Field(min_length=1, max_length=500)


class BatchTarget(BaseModel):
    """Independent positions anywhere, results indexed by position."""

    model_config = _STRICT
    kind: Literal["batch"]
    positions: list[PositionIn] = Field(min_length=1, max_length=10_000)


class ProperMotionTarget(PositionIn):
    """A star's 5-parameter astrometric model (Gaia conventions: ``pmra`` includes cos δ)."""

    kind: Literal["proper_motion"]
    pmra: float = Field(default=0.0, ge=-20_000, le=20_000, description="mas/yr")
    pmdec: float = Field(default=0.0, ge=-20_000, le=20_000, description="mas/yr")
    parallax: float = Field(default=0.0, ge=0, le=1_000, description="mas")
    epoch: float = Field(default=2016.0, ge=1900, le=2100, description="Julian year")


class OrbitTarget(BaseModel):
    """An asteroid: a designation from the loaded orbit catalog, or one MPCORB.DAT line."""

    model_config = _STRICT
    kind: Literal["orbit"]
    designation: str | None = Field(default=None, min_length=1, max_length=32)
    mpcorb: str | None = Field(default=None, min_length=1, max_length=300)


Target = Annotated[PositionTarget | PositionsTarget | BatchTarget | ProperMotionTarget | OrbitTarget,
                   Field(discriminator="kind")]


class JobOptionsIn(BaseModel):
    """Options of a job (all optional)."""

    model_config = _STRICT
    mjd_min: float | None = Field(default=None, ge=50000, le=100000, description="TAI MJD")
    mjd_max: float | None = Field(default=None, ge=50000, le=100000, description="TAI MJD")
    stamps: bool = False
    images: Literal["nightly", "data_release"] = "nightly"
    sed: dict[str, Any] | None = Field(default=None, description="docs/precovery-service.md")


class NotifyIn(BaseModel):
    """Completion notification: a signed webhook (secret returned once) and/or an e-mail."""

    model_config = _STRICT
    webhook: str | None = Field(default=None, max_length=2048)
    email: str | None = Field(default=None, max_length=254)


class JobSubmission(BaseModel):
    """``POST /api/precovery/jobs``."""

    model_config = _STRICT
    target: Target
    options: JobOptionsIn | None = None
    notify: NotifyIn | None = None


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, content_types.APPLICATION_JSON, json.dumps(body), headers=headers)


def register_precovery_routes(app: APIGatewayHttpResolver, ctx: Any, user: Callable[[], str],
                              api_error: type[Exception]) -> None:
    """Add the precovery routes to ``app`` when ``ctx.precovery`` (a JobContext) is set."""
    jobs = getattr(ctx, "precovery", None)
    if jobs is None:
        return

    def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(jobs, *args, **kwargs)
        except QuotaError:
            raise  # the 429 handler below
        except NotFoundError as exc:
            raise api_error(404, str(exc)) from exc
        except StorageError:
            raise
        except PrecoveryError as exc:  # TargetError and friends: the client's input
            raise api_error(400, str(exc)) from exc

    def document(record) -> dict[str, Any]:
        return job_document(jobs, record)

    def job_id_or_404(job_id: str) -> str:
        import re

        if not re.match(_JOB_ID, job_id):
            raise api_error(404, f"no job {job_id[:64]!r}")
        return job_id

    @app.exception_handler(QuotaError)
    def _over_quota(exc: QuotaError) -> Response:
        return _json(429, {"error": str(exc)}, {"Retry-After": str(exc.retry_after_s)})

    @app.post("/api/precovery/jobs", tags=["precovery"], summary="Submit a precovery job")
    def submit(body: Annotated[JobSubmission, Body()]):
        raw = json.loads(app.current_event.body or "{}")  # as sent: the service checks every value
        key = app.current_event.headers.get("idempotency-key")  # a retried POST returns the first job
        record, secret = call(submit_job, user(), raw, idempotency_key=key)
        doc = document(record)
        if secret:
            doc["webhookSecret"] = secret  # shown once
        return _json(201, doc, {"Location": f"/api/precovery/jobs/{record.job_id}"})

    @app.get("/api/precovery/jobs", tags=["precovery"], summary="The caller's jobs, newest first")
    def list_all(phase: Annotated[Literal["PENDING", "QUEUED", "EXECUTING", "COMPLETED", "ERROR",
                                          "ABORTED"] | None, Query()] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100):
        records = [r for r in call(list_jobs, user()) if phase is None or r.job.phase == phase]
        schedule = jobs.store.get_schedule()
        return _json(200, {"jobs": [job_document(jobs, r, schedule=schedule) for r in records[:limit]],
                           "truncated": len(records) > limit})

    @app.get("/api/precovery/jobs/<job_id>", tags=["precovery"], summary="A job (UWS WAIT with ?wait=S)")
    def read(job_id: str, wait: Annotated[float | None, Query(ge=0, le=3600)] = None):
        job_id_or_404(job_id)
        owner = user()
        record = call(wait_job, owner, job_id, wait) if wait else call(get_job, owner, job_id)
        accept = (app.current_event.headers.get("accept") or "").lower()
        if "application/xml" in accept or "text/xml" in accept:
            return Response(200, "application/xml", job_xml(record.job).decode())
        return _json(200, document(record))

    @app.post("/api/precovery/jobs/<job_id>/phase", tags=["precovery"],
              summary="PHASE=ABORT (form-encoded, as UWS, or JSON)")
    def phase(job_id: str):
        job_id_or_404(job_id)
        owner = user()
        raw = app.current_event.body or ""
        ctype = (app.current_event.headers.get("content-type") or "").lower()
        value: Any = None
        if "json" in ctype or raw.lstrip().startswith("{"):
            try:
                value = (json.loads(raw) or {}).get("PHASE")
            except (ValueError, AttributeError):
                raise api_error(400, "the body is not a JSON object") from None
        else:
            value = (parse_qs(raw).get("PHASE") or [None])[0]
        if value != "ABORT":
            raise api_error(400, "PHASE: only ABORT is accepted (a job starts when it is submitted)")
        record = call(abort_job, owner, job_id)
        return _json(200, document(record))

    @app.delete("/api/precovery/jobs/<job_id>", tags=["precovery"], summary="Remove a job and its results")
    def remove(job_id: str):
        job_id_or_404(job_id)
        call(delete_job, user(), job_id)
        return Response(204, content_types.APPLICATION_JSON, "")

    @app.get("/api/precovery/jobs/<job_id>/results/lightcurve", tags=["precovery"],
             summary="The light curve (one row per position and image)")
    def lightcurve(job_id: str, format: Annotated[Literal["csv", "json", "votable"], Query()] = "json"):  # noqa: A002 - §6's name
        job_id_or_404(job_id)
        data, ctype = call(read_result, user(), job_id, format)
        return Response(200, ctype, data.decode("utf-8"),
                        headers={"Content-Disposition": f'attachment; filename="{job_id}.{"xml" if format == "votable" else format}"'})

    @app.get("/api/precovery/jobs/<job_id>/results/stamps", tags=["precovery"],
             summary="Postage stamps (zip of FITS and PNG)")
    def stamps(job_id: str):
        job_id_or_404(job_id)
        data, ctype = call(read_result, user(), job_id, "stamps")
        return Response(200, ctype, data,
                        headers={"Content-Disposition": f'attachment; filename="{job_id}-stamps.zip"'})

