"""Build the static HTML report of a replayed night from the files ``alertprod replay --export`` leaves.

:func:`build_report` reads ``OUT/alerts/*.avro``, ``OUT/summary.json``, ``OUT/quarantine.json`` and
the exported tables (each optional), and writes ``OUT/report/index.html`` with its figures under
``OUT/report/img/`` and one page per alert under ``OUT/report/alerts/`` for the ``max_alerts`` most
significant alerts. The site is plain files with relative links: open ``index.html`` in a browser.
"""

from __future__ import annotations

import math
import multiprocessing
from collections import defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from astropy.io import fits

from alertprod.errors import ConfigError
from alertprod.report.alert_page import alert_page_name, write_alert_page
from alertprod.report.data import (
    AlertRow,
    AlertSet,
    load_quarantine,
    load_summary,
    load_table,
    read_alerts,
)
from alertprod.report.plots import (
    BAND_COLORS,
    plot_alerts_per_visit,
    plot_ccd_seconds,
    plot_dynamodb_requests,
    plot_sky_map,
    plot_stage_seconds,
)
from alertprod.report.templates import esc, fmt, page, table

__all__ = ["build_report", "COUNT_LABELS"]

#: ``summary.json`` counters, in the order and with the words the counts table uses.
COUNT_LABELS: dict[str, str] = {
    "visits": "visits", "ccds": "CCDs processed", "diaSources": "DiaSources",
    "newDiaObjects": "new DiaObjects", "updatedDiaObjects": "updated DiaObjects",
    "ssoMatches": "solar-system matches", "forcedSources": "forced sources",
    "precoverySources": "precovery forced sources", "alerts": "alerts published",
    "quarantined": "uploads quarantined",
}
_TABLES = ("DiaObject", "DiaSource", "DiaForcedSource", "SSObject")
_NAV = (("At a glance", "#glance"), ("Timings", "#timings"), ("Filters", "#filters"),
        ("Quarantine", "#quarantine"), ("Alerts", "#alerts"))


def _table_rows(path: Path) -> int | None:
    """Row count of a FITS binary table from its header alone (no data read)."""
    try:
        return int(fits.getheader(path, 1).get("NAXIS2", 0))
    except (OSError, IndexError, KeyError, ValueError):
        return None


def _counts_section(out: Path, summary: Mapping[str, Any], alerts: AlertSet,
                    quarantine: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for key, label in COUNT_LABELS.items():
        if key in summary:
            rows.append((key, label, summary[key], "summary.json"))
    for key, value in summary.items():  # counters this report does not know yet
        if key not in COUNT_LABELS and isinstance(value, (int, float)) and not isinstance(value, bool) \
                and key not in ("ccdSecondsP50", "ccdSecondsP95", "dynamodbRequestsPerCcd"):
            rows.append((key, key, value, "summary.json"))
    rows.append(("alertsRead", "alerts in alerts/*.avro", len(alerts.rows), "alerts/"))
    rows.append(("alertsNew", "\u2026 of which new DiaObjects", sum(r.is_new for r in alerts.rows), "alerts/"))
    rows.append(("alertsSso", "\u2026 of which solar-system", sum(r.is_sso for r in alerts.rows), "alerts/"))
    rows.append(("quarantineEntries", "entries in quarantine.json", len(quarantine), "quarantine.json"))
    for name in _TABLES:
        n = _table_rows(out / f"{name}.fits")
        if n is not None:
            rows.append((f"rows{name}", f"rows of {name}.fits", n, f"{name}.fits"))
    body = "".join(f'<tr><th>{esc(label)}</th><td class="num" id="count-{esc(key)}">{esc(fmt(value))}'
                   f'</td><td class="note">{esc(src)}</td></tr>' for key, label, value, src in rows)
    warn = ""
    if "alerts" in summary and summary["alerts"] != len(alerts.rows):
        warn += (f'<p class="warn">summary.json counts {esc(summary["alerts"])} alerts but '
                 f"{len(alerts.rows)} were read from alerts/.</p>")
    if alerts.unreadable:
        warn += '<p class="warn">unreadable alert files: ' + ", ".join(
            f"{esc(n)} ({esc(e)})" for n, e in alerts.unreadable) + "</p>"
    return f"<table>{body}</table>{warn}"


def _timing_stats(summary: Mapping[str, Any]) -> tuple[list[Mapping[str, Any]], dict[str, float]]:
    per_ccd = [e for e in summary.get("perCcd") or [] if isinstance(e, Mapping)]
    secs = np.array([float(e["seconds"]) for e in per_ccd if isinstance(e.get("seconds"), (int, float))])
    req = np.array([float(e["dynamodbRequests"]) for e in per_ccd
                    if isinstance(e.get("dynamodbRequests"), (int, float))])
    stats = {
        "p50": summary.get("ccdSecondsP50", float(np.percentile(secs, 50)) if secs.size else math.nan),
        "p95": summary.get("ccdSecondsP95", float(np.percentile(secs, 95)) if secs.size else math.nan),
        "req": summary.get("dynamodbRequestsPerCcd", float(req.mean()) if req.size else math.nan),
    }
    return per_ccd, {k: float(v) if isinstance(v, (int, float)) else math.nan for k, v in stats.items()}


def _timings_section(summary: Mapping[str, Any], img: Path) -> str:
    per_ccd, stats = _timing_stats(summary)
    plot_ccd_seconds([e.get("seconds") for e in per_ccd
                      if isinstance(e.get("seconds"), (int, float))], img / "ccd_seconds.png",
                     p50=None if math.isnan(stats["p50"]) else stats["p50"],
                     p95=None if math.isnan(stats["p95"]) else stats["p95"])
    plot_stage_seconds(per_ccd, img / "stage_seconds.png")
    plot_dynamodb_requests(per_ccd, img / "dynamodb_requests.png")
    stage_values: dict[str, list[float]] = defaultdict(list)
    for e in per_ccd:
        for name, sec in (e.get("stages") or {}).items():
            if isinstance(sec, (int, float)):
                stage_values[str(name)].append(float(sec))
    total = sum(np.mean(v) for v in stage_values.values()) or 1.0
    stage_table = table(("stage", "mean s", "p95 s", "share"), (
        (name, float(np.mean(v)), float(np.percentile(v, 95)), f"{100 * np.mean(v) / total:.0f} %")
        for name, v in stage_values.items()), numeric=(False, True, True, False))
    head = table(("CCDs timed", "p50 seconds per CCD", "p95 seconds per CCD",
                  "DynamoDB requests per CCD"),
                 [(len(per_ccd), stats["p50"], stats["p95"], stats["req"])], numeric=(True,) * 4)
    return (f"{head}<div class=\"figs\"><img src=\"img/ccd_seconds.png\" alt=\"seconds per CCD\">"
            "<img src=\"img/dynamodb_requests.png\" alt=\"DynamoDB requests per CCD\">"
            "<img src=\"img/stage_seconds.png\" alt=\"mean seconds per stage\"></div>"
            f"<h3>Mean seconds per stage</h3>{stage_table if stage_values else '<p class=note>none</p>'}")


def _filters_section(summary: Mapping[str, Any]) -> str:
    """What each user's filter received (``summary.json``'s ``filters``: the demo's users)."""
    filters = summary.get("filters")
    if not isinstance(filters, Mapping) or not filters:
        return '<p class="note">No alert filter was registered in this run.</p>'
    rows = []
    for user, got in filters.items():
        if not isinstance(got, Mapping):
            continue
        totals = got.get("counters") or {}
        rows.append((user, got.get("filter", ""), got.get("expression", ""), got.get("transport", ""),
                     got.get("unique_alerts", ""), totals.get("matched", ""),
                     totals.get("delivered", ""), totals.get("failed", ""), totals.get("held", "")))
    return ('<p class="note">Filters registered through the HTTP API with each user\'s token; '
            "alerts counted at the receiving end, deduplicated on the delivery id.</p>"
            + table(("user", "filter", "expression", "transport", "alerts received", "matched",
                     "delivered", "failed", "held"), rows, table_id="filters-table"))


def _quarantine_section(quarantine: Sequence[Mapping[str, Any]]) -> str:
    if not quarantine:
        return '<p class="note">No upload was quarantined.</p>'
    return table(("key", "reason", "detail"),
                 ((q.get("key", ""), q.get("reason", ""), q.get("detail", "")) for q in quarantine),
                 table_id="quarantine-table", css="sortable")


def _alert_list(rows: Sequence[AlertRow], rendered: set[int], max_alerts: int) -> str:
    bands = sorted({r.band for r in rows}, key=lambda b: ("ugrizy".find(b) % 7, b))
    options = "".join(f'<option value="{esc(b)}">{esc(b)}</option>' for b in bands)
    controls = (
        '<div class="filters"><input type="search" id="q" placeholder="filter: id, visit, text\u2026">'
        f'<label>band <select id="fband"><option value="">all</option>{options}</select></label>'
        '<label><input type="checkbox" id="fnew"> new only</label>'
        '<label><input type="checkbox" id="fsso"> SSO only</label>'
        '<label><input type="checkbox" id="fpage"> with page only</label>'
        f'<span class="note"><span id="nshown">{len(rows)}</span> shown</span></div>')
    head = ("<thead><tr><th>#</th><th>diaSourceId</th><th class=num>MJD (TAI)</th><th>band</th>"
            "<th class=num>RA</th><th class=num>Dec</th><th class=num>S/N</th>"
            "<th class=num>psfFlux nJy</th><th class=num>reliability</th><th>new?</th><th>SSO?</th>"
            "<th class=num>visit</th><th class=num>detector</th></tr></thead>")
    lines = []
    for rank, r in enumerate(rows, 1):
        has_page = r.diaSourceId in rendered
        ident = (f'<a href="alerts/{esc(alert_page_name(r.diaSourceId))}">{esc(r.diaSourceId)}</a>'
                 if has_page else esc(r.diaSourceId))
        num = f'<td class="num" data-v="{esc(r.midpointMjdTai)}">{esc(fmt(r.midpointMjdTai, 5))}</td>'
        pos = "".join(f'<td class="num" data-v="{esc(v)}">{esc(fmt(v, d))}</td>' for v, d in (
            (r.ra, 5), (r.dec, 5), (r.snr, 1), (r.psfFlux, 0), (r.reliability, 2)))
        lines.append(
            f'<tr data-band="{esc(r.band)}" data-new="{int(r.is_new)}" data-sso="{int(r.is_sso)}" '
            f'data-page="{int(has_page)}"><td class="num" data-v="{rank}">{rank}</td>'
            f'<td data-v="{esc(r.diaSourceId)}">{ident}</td>{num}'
            f'<td class="band" style="color:{BAND_COLORS.get(r.band, "#777")}">{esc(r.band)}</td>'
            f'{pos}<td>{"yes" if r.is_new else ""}</td><td>{"yes" if r.is_sso else ""}</td>'
            f'<td class="num" data-v="{r.visit}">{r.visit}</td>'
            f'<td class="num" data-v="{r.detector}">{r.detector}</td></tr>')
    note = (f'<p class="note">{len(rendered)} of {len(rows)} alerts have a page: the most significant '
            f"by |S/N| (at most {max_alerts}). Click a column title to sort.</p>")
    return (f"{note}{controls}<div class=\"scroll\"><table id=\"alerts\" class=\"sortable\">{head}"
            f"<tbody>{''.join(lines)}</tbody></table></div>")


def _ss_objects(out: Path, rows: Sequence[AlertRow]) -> dict[int, dict[str, Any]]:
    if not any(r.is_sso for r in rows) or not (out / "SSObject.fits").exists():
        return {}
    tab = load_table(out / "SSObject.fits")
    if tab is None or "ssObjectId" not in tab.colnames:
        return {}
    names = [n for n in tab.colnames if tab[n].ndim == 1]
    out_rows: dict[int, dict[str, Any]] = {}
    for values in tab[names].as_array().tolist():  # one conversion to Python scalars
        rec = {n: (v.decode() if isinstance(v, bytes) else v) for n, v in zip(names, values, strict=True)}
        if rec.get("ssObjectId") is not None:
            out_rows[int(rec["ssObjectId"])] = rec
    return out_rows


def _render_page(job: tuple) -> Path:
    """:func:`write_alert_page` on one packed job (a top-level function, so workers can pickle it)."""
    alert, row, report, kwargs = job
    return write_alert_page(alert, row, report, **kwargs)


def build_report(out_dir: str | Path, *, max_alerts: int = 500, workers: int = 1) -> Path:
    """Write the static HTML report of an exported night into ``out_dir/report/``.

    Parameters
    ----------
    out_dir : str or Path
        The export directory of ``alertprod replay --export`` (or ``alertprod demo``): it may hold
        ``alerts/*.avro``, ``summary.json``, ``quarantine.json`` and ``{DiaObject,DiaSource,
        DiaForcedSource,SSObject}.fits``; each is optional.
    max_alerts : int
        Render pages (cutouts, light curve) for at most this many alerts, the most significant
        by |S/N| first; every alert is still listed in the index.
    workers : int
        Processes rendering alert pages (a light curve costs ~0.1 s of CPU, so 500 pages take about
        a minute on one core); 1 renders in this process.

    Returns
    -------
    Path
        ``out_dir/report/index.html``.

    Raises
    ------
    ConfigError
        ``out_dir`` is not a directory, ``max_alerts`` is negative or ``workers`` < 1.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise ConfigError(f"out_dir {str(out)!r} is not a directory")
    if max_alerts < 0:
        raise ConfigError(f"max_alerts must be >= 0, got {max_alerts}")
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    report = out / "report"
    img = report / "img"
    for stale in [*(report / "alerts").glob("*.html"), *img.glob("**/*.png")]:
        stale.unlink()  # pages of an earlier build of this report only
    img.mkdir(parents=True, exist_ok=True)

    alerts = read_alerts(out / "alerts", max_full=max_alerts)
    summary = load_summary(out / "summary.json")
    quarantine = load_quarantine(out / "quarantine.json")
    ss_objects = _ss_objects(out, alerts.rows)

    ranked = [(rank, r) for rank, r in enumerate(alerts.rows, 1) if r.diaSourceId in alerts.full]
    jobs = [(alerts.full[row.diaSourceId], row, report, {
        "prev_id": ranked[i - 1][1].diaSourceId if i > 0 else None,
        "next_id": ranked[i + 1][1].diaSourceId if i + 1 < len(ranked) else None,
        "rank": rank, "ss_objects": ss_objects}) for i, (rank, row) in enumerate(ranked)]
    if workers > 1 and len(jobs) > 1:
        # spawn, not fork: a forked copy of a process with threads (boto3, tqdm) may deadlock
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            list(pool.map(_render_page, jobs, chunksize=max(1, len(jobs) // (4 * workers))))
    else:
        for job in jobs:
            _render_page(job)
    rendered = {r.diaSourceId for _, r in ranked}

    plot_sky_map(alerts.rows, img / "sky_map.png")
    plot_alerts_per_visit(alerts.rows, img / "alerts_per_visit.png")
    body = (
        f'<section id="glance"><h2>The night at a glance</h2><div class="grid2"><div>'
        f"{_counts_section(out, summary, alerts, quarantine)}</div>"
        '<div><img src="img/sky_map.png" alt="sky map of the alerts" style="max-width:100%"></div>'
        '</div><img src="img/alerts_per_visit.png" alt="alerts per visit"></section>'
        f'<section id="timings"><h2>Per-CCD timings</h2>{_timings_section(summary, img)}</section>'
        f'<section id="filters"><h2>Alert filters</h2>{_filters_section(summary)}</section>'
        f'<section id="quarantine"><h2>Quarantine ({len(quarantine)})</h2>'
        f"{_quarantine_section(quarantine)}</section>"
        f'<section id="alerts"><h2>Alerts ({len(alerts.rows)})</h2>'
        f"{_alert_list(alerts.rows, rendered, max_alerts)}</section>"
    )
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    index = report / "index.html"
    index.write_text(page("alertprod \u2014 night report", body, nav=_NAV, script=True,
                          subtitle=f"export {out.resolve().name}, built {stamp}"), encoding="utf-8")
    return index
