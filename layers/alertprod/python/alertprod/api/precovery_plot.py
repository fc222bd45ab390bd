"""``GET /api/precovery/jobs/{id}/results/lightcurve.svg``: a finished job's light curve, drawn.

The web page shows this SVG rather than drawing in the browser, so that the precovery page and
the nightly report draw light curves with one implementation
(:func:`alertprod.plotting.precovery_light_curve_svg`, matplotlib). Each plotted point links to
its row of the JSON light curve (``data-row``: the row's index in ``rows``), which lets the page
tie points to stamps and lets a test check that the points are the API's rows. ``?target=N``
draws one position of a multi-position job (all rows when absent). Errors as the other
precovery routes: 404 for a job that is not the caller's, not finished, or does not exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.params import Query

from alertprod.errors import NotFoundError

__all__ = ["register_light_curve_plot"]

_JOB_ID = re.compile(r"[A-Za-z0-9_\-]{1,64}")


def register_light_curve_plot(app: APIGatewayHttpResolver, ctx: Any, user: Callable[[], str],
                              api_error: type[Exception]) -> None:
    """Add the light-curve SVG route to ``app`` when ``ctx.precovery`` (a JobContext) is set."""
    jobs = getattr(ctx, "precovery", None)
    if jobs is None:
        return

    @app.get("/api/precovery/jobs/<job_id>/results/lightcurve.svg", tags=["precovery"],
             summary="The light curve drawn per band (SVG; each point links to its JSON row)")
    def light_curve_svg(job_id: str, target: Annotated[int | None, Query(ge=0, le=1_000_000)] = None):
        from alertprod.plotting import precovery_light_curve_svg  # matplotlib: only when drawn
        from alertprod.precovery.jobservice import read_result

        if not _JOB_ID.fullmatch(job_id):
            raise api_error(404, f"no job {job_id[:64]!r}")
        try:
            data, _ = read_result(jobs, user(), job_id, "json")
        except NotFoundError as exc:
            raise api_error(404, str(exc)) from exc
        rows = json.loads(data)["rows"]
        svg = precovery_light_curve_svg(rows, target=target)
        # results do not change once a job is COMPLETED
        return Response(200, "image/svg+xml", svg.decode("utf-8"),
                        headers={"Cache-Control": "private, max-age=3600"})
