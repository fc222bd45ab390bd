"""A Python client of the precovery service's API (interfaces.md §6), for scripts and the CLI.

The service speaks plain HTTP and JSON, so this client is a thin layer over the standard
library's :mod:`urllib` (no extra dependency for a user who only wants to submit a job):
one method per operation, the job document returned as the API gives it, every refusal raised
as one :class:`PrecoveryApiError` carrying the HTTP status and the API's ``{"error": ...}``
message. Throttling is honoured: a ``429`` is retried after its ``Retry-After`` (seconds or an
HTTP date), at most ``max_retries`` times and never for longer than ``max_retry_after_s`` at a
time, then raised. :meth:`PrecoveryClient.wait` blocks with the UWS ``?wait=`` parameter, so a
waiting client costs the service one request per ``wait`` interval rather than a busy poll.

Example
-------
>>> client = PrecoveryClient("http://127.0.0.1:8080", token)           # doctest: +SKIP
>>> job = client.submit({"kind": "position", "ra": 150.1, "dec": 2.2})  # doctest: +SKIP
>>> job = client.wait(job["jobId"], timeout_s=3600)                    # doctest: +SKIP
>>> rows = client.results(job["jobId"])                                # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from email.utils import parsedate_to_datetime
from typing import Any

from alertprod.errors import PrecoveryError

__all__ = ["FINAL_PHASES", "RESULT_FORMATS", "PrecoveryApiError", "PrecoveryClient", "job_progress"]

#: UWS phases after which a job no longer changes.
FINAL_PHASES = frozenset({"COMPLETED", "ERROR", "ABORTED"})
#: Formats of ``results/lightcurve`` (interfaces.md §6).
RESULT_FORMATS = ("json", "csv", "votable")
#: Longest single ``?wait=`` asked of the service [s] (a load balancer's idle timeout is ~60 s).
MAX_WAIT_S = 30.0


class PrecoveryApiError(PrecoveryError):
    """The service refused a request, or could not be reached.

    Attributes
    ----------
    status : int
        HTTP status (0 when no response arrived).
    message : str
        The API's ``error`` text (or the transport's reason).
    retry_after_s : float or None
        The ``Retry-After`` of a ``429`` [s].
    """

    def __init__(self, status: int, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = int(status)
        self.message = message
        self.retry_after_s = retry_after_s


def _retry_after_s(value: str | None) -> float | None:
    """Seconds of a ``Retry-After`` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def job_progress(job: Mapping[str, Any]) -> tuple[int | None, int | None]:
    """``(done, total)`` units of a job document, ``None`` where the document does not say.

    The job document carries its unit counts under ``units`` (``{"total": n, "done": m, ...}``).
    """
    units = job.get("units")
    if not isinstance(units, Mapping):
        return None, None

    def count(key: str) -> int | None:
        value = units.get(key)
        return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

    done = count("done")
    if done is not None:
        done += sum(c or 0 for c in (count("failed"), count("skipped")))
    return done, count("total")


class PrecoveryClient:
    """Submit, follow and fetch precovery jobs.

    Parameters
    ----------
    base_url : str
        The service's root (``alertprod serve`` prints it as ``url:``); a trailing ``/api`` is
        accepted too.
    token : str
        Bearer token (``alertprod tokens issue``).
    timeout_s : float
        Socket timeout of one request [s] (a ``?wait=`` request gets its wait on top).
    max_retries : int
        How many ``429`` answers to sit out before raising.
    max_retry_after_s : float
        Longest ``Retry-After`` honoured [s]; a longer one is raised at once.
    sleep : callable
        ``sleep(seconds)``, for tests and callers with their own event loop.
    """

    def __init__(self, base_url: str, token: str, *, timeout_s: float = 60.0, max_retries: int = 5,
                 max_retry_after_s: float = 120.0, sleep: Callable[[float], None] = time.sleep) -> None:
        parsed = urllib.parse.urlsplit(str(base_url or ""))
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise PrecoveryError(f"base_url: expected http(s)://host[:port], got {base_url!r}")
        if not token or any(c.isspace() for c in str(token)):
            raise PrecoveryError("token: expected a non-empty bearer token without spaces")
        if max_retries < 0 or max_retry_after_s < 0 or timeout_s <= 0:
            raise PrecoveryError("timeout_s must be > 0; max_retries and max_retry_after_s >= 0")
        root = base_url.rstrip("/")
        self.api_url = root if root.endswith("/api") else root + "/api"
        self.token = str(token)
        self.timeout_s = float(timeout_s)
        self.max_retries = int(max_retries)
        self.max_retry_after_s = float(max_retry_after_s)
        self._sleep = sleep

    # ------------------------------------------------------------------ operations
    def submit(self, target: Mapping[str, Any], *, idempotency_key: str | None = None,
               notify: Mapping[str, str] | None = None, **options: Any) -> dict[str, Any]:
        """Create and start a job; returns its document (``jobId``, ``phase``, ``eta`` ...).

        Parameters
        ----------
        target : mapping
            One of the target objects of interfaces.md §6 (``{"kind": "position", ...}``).
        idempotency_key : str, optional, keyword-only
            Sent as ``Idempotency-Key``: submitting again with the same key (say after a
            connection dropped before the answer came) returns the first job, counted once
            against the quota.
        notify : mapping, optional, keyword-only
            ``{"webhook": url}`` and/or ``{"email": address}`` to be told when the job ends.
        **options
            ``mjd_min``, ``mjd_max`` (TAI MJD), ``stamps``, ``images``, ``sed``; ``None``
            values are left out.
        """
        if not isinstance(target, Mapping) or "kind" not in target:
            raise PrecoveryError("target: expected a mapping with a 'kind'")
        body: dict[str, Any] = {"target": dict(target),
                                "options": {k: v for k, v in options.items() if v is not None}}
        if notify:
            body["notify"] = dict(notify)
        headers = {"Idempotency-Key": str(idempotency_key)} if idempotency_key else None
        return self._json("POST", "/precovery/jobs", body=body, headers=headers)

    def status(self, job_id: str, *, wait_s: float | None = None) -> dict[str, Any]:
        """The job document; with ``wait_s``, blocks up to that long while the phase is not final."""
        query = None
        if wait_s is not None:
            if not math.isfinite(wait_s) or wait_s < 0:
                raise PrecoveryError(f"wait_s: expected a finite number >= 0, got {wait_s!r}")
            query = {"wait": str(int(math.ceil(wait_s)))}
        return self._json("GET", self._job_path(job_id), query=query,
                          extra_timeout_s=float(wait_s or 0.0))

    def wait(self, job_id: str, *, timeout_s: float = 86400.0,
             progress: Callable[[dict[str, Any]], None] | None = None,
             wait_step_s: float = MAX_WAIT_S) -> dict[str, Any]:
        """Block until the job is final or ``timeout_s`` has passed; returns the last document.

        ``progress(job)`` is called with every document received (the first at once), so a
        caller can draw a progress bar from :func:`job_progress` and the ``eta``.
        """
        if not math.isfinite(timeout_s) or timeout_s < 0 or not wait_step_s > 0:
            raise PrecoveryError("timeout_s must be finite and >= 0; wait_step_s > 0")
        deadline = time.monotonic() + timeout_s
        job = self.status(job_id)
        while True:
            if progress is not None:
                progress(job)
            remaining = deadline - time.monotonic()
            if job.get("phase") in FINAL_PHASES or remaining <= 0:
                return job
            job = self.status(job_id, wait_s=min(wait_step_s, max(1.0, remaining)))

    def results(self, job_id: str, format: str = "json", *,
                raw: bool = False) -> list[dict[str, Any]] | bytes:
        """The light curve: its rows (a list of dicts) for ``json``, the raw bytes for ``csv``
        and ``votable`` (and for ``json`` too with ``raw=True``: the whole document, with the
        per-band baselines beside the rows)."""
        if format not in RESULT_FORMATS:
            raise PrecoveryError(f"format: expected one of {RESULT_FORMATS}, got {format!r}")
        data = self._request("GET", self._job_path(job_id) + "/results/lightcurve",
                             query={"format": format})
        if format != "json" or raw:
            return data
        doc = _parse_json(data)
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise PrecoveryApiError(200, "light curve JSON has no 'rows' list")
        return doc["rows"]

    def stamps(self, job_id: str) -> bytes:
        """The job's postage stamps as one zip archive (a job submitted with ``stamps=True``)."""
        return self._request("GET", self._job_path(job_id) + "/results/stamps")

    def abort(self, job_id: str) -> dict[str, Any]:
        """Abort a job that is not final (UWS ``PHASE=ABORT``); returns its document."""
        return self._json("POST", self._job_path(job_id) + "/phase", body={"PHASE": "ABORT"})

    def delete(self, job_id: str) -> None:
        """Remove a job and its results."""
        self._request("DELETE", self._job_path(job_id))

    def list(self, *, limit: int = 100) -> list[dict[str, Any]]:
        """The caller's newest ``limit`` jobs (1 to 1,000; their documents, as the service lists them)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
            raise PrecoveryError(f"limit: expected an integer from 1 to 1000, got {limit!r}")
        doc = self._json("GET", "/precovery/jobs", query={"limit": str(limit)})
        jobs = doc.get("jobs") if isinstance(doc, dict) else doc
        if not isinstance(jobs, list):
            raise PrecoveryApiError(200, "job list is not a list")
        return jobs

    # ------------------------------------------------------------------ transport
    @staticmethod
    def _job_path(job_id: str) -> str:
        if not isinstance(job_id, str) or not job_id.strip():
            raise PrecoveryError(f"job_id: expected a non-empty string, got {job_id!r}")
        return "/precovery/jobs/" + urllib.parse.quote(job_id, safe="")

    def _json(self, method: str, path: str, *, body: Any = None, query: Mapping[str, str] | None = None,
              extra_timeout_s: float = 0.0, headers: Mapping[str, str] | None = None) -> Any:
        return _parse_json(self._request(method, path, body=body, query=query,
                                         extra_timeout_s=extra_timeout_s, headers=headers))

    def _request(self, method: str, path: str, *, body: Any = None,
                 query: Mapping[str, str] | None = None, extra_timeout_s: float = 0.0,
                 headers: Mapping[str, str] | None = None) -> bytes:
        url = self.api_url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        try:
            data = None if body is None else json.dumps(body, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PrecoveryError(f"request body is not JSON: {exc}") from exc
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json, */*",
                   **(headers or {})}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self.max_retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s + extra_timeout_s) as r:
                    return r.read()
            except urllib.error.HTTPError as exc:
                error = _api_error(exc)
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                raise PrecoveryApiError(0, f"cannot reach {self.api_url}: {reason}") from exc
            wait = error.retry_after_s
            if (error.status != 429 or attempt == self.max_retries
                    or (wait is not None and wait > self.max_retry_after_s)):
                raise error
            # a 429 without Retry-After: back off exponentially from one second
            self._sleep(wait if wait is not None else min(2.0**attempt, self.max_retry_after_s))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _api_error(exc: urllib.error.HTTPError) -> PrecoveryApiError:
    """The API's ``{"error": ...}`` of an HTTP error response, with its ``Retry-After``."""
    raw = exc.read() or b""
    message = ""
    try:
        doc = json.loads(raw)
        if isinstance(doc, dict):
            message = str(doc.get("error") or doc.get("message") or "")
    except ValueError:
        message = raw[:200].decode("utf-8", "replace").strip()
    return PrecoveryApiError(exc.code, message or str(exc.reason),
                             retry_after_s=_retry_after_s(exc.headers.get("Retry-After")))


def _parse_json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as exc:
        raise PrecoveryApiError(200, f"response is not JSON: {data[:80]!r}") from exc
