"""One alert's page of the night report: facts, cutouts, light curve, DiaObject and SSObject fields.

:func:`write_alert_page` renders the cutout PNGs and the light curve into ``report/img/alerts/``
and writes ``report/alerts/<diaSourceId>.html``, whose links are relative so the site can be
copied or zipped anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alertprod.report.data import AlertRow, cutout_image
from alertprod.report.plots import BAND_COLORS, plot_light_curve, save_cutout
from alertprod.report.templates import esc, fmt, kv_table, page

__all__ = ["alert_page_name", "write_alert_page"]

_FACTS = ("diaSourceId", "diaObjectId", "ssObjectId", "visit", "detector", "midpointMjdTai", "band",
          "ra", "raErr", "dec", "decErr", "psfFlux", "psfFluxErr", "snr", "reliability",
          "scienceFlux", "scienceFluxErr", "templateFlux", "extendedness", "isDipole", "isNegative",
          "trailLength", "timeProcessedMjdTai")
_OBJECT_FIELDS = ("diaObjectId", "validityStartMjdTai", "ra", "raErr", "dec", "decErr", "nDiaSources",
                  "firstDiaSourceMjdTai", "lastDiaSourceMjdTai")
_PER_BAND = ("psfFluxMean", "psfFluxMeanErr", "psfFluxSigma", "psfFluxNdata", "fpFluxMean",
             "fpFluxMeanErr", "scienceFluxMean", "psfFluxMin", "psfFluxMax", "psfFluxMaxSlope")
_ORBIT_FIELDS = ("designation", "unpacked_primary_provisional_designation", "orbit_type_int", "epoch_mjd",
                 "a", "q", "e", "i", "node", "argperi", "h", "g", "arc_length_total", "nobs_total")
_CUTOUTS = (("cutoutDifference", "diff", "difference"), ("cutoutTemplate", "tmpl", "template"),
            ("cutoutScience", "sci", "science"))


def alert_page_name(dia_source_id: int) -> str:
    """File name of an alert's page inside ``report/alerts/``."""
    return f"{int(dia_source_id)}.html"


def _per_band_table(obj: Mapping[str, Any]) -> str:
    rows = []
    for band in "ugrizy":
        values = [obj.get(f"{band}_{name}") for name in _PER_BAND]
        if all(v is None or v == 0 for v in values):
            continue
        cells = "".join(f'<td class="num">{esc(fmt(v))}</td>' for v in values)
        rows.append(f'<tr><th class="band" style="color:{BAND_COLORS[band]}">{band}</th>{cells}</tr>')
    if not rows:
        return '<p class="note">no per-band summaries</p>'
    head = "".join(f'<th class="num">{esc(n)}</th>' for n in _PER_BAND)
    return f"<div class=\"scroll\"><table><thead><tr><th>band</th>{head}</tr></thead>" \
           f"<tbody>{''.join(rows)}</tbody></table></div>"


def _cutouts_html(alert: Mapping[str, Any], sid: int, img_dir: Path) -> str:
    figures = []
    for field, short, label in _CUTOUTS:
        image = cutout_image(alert.get(field))
        if image is None:
            if field == "cutoutScience":
                continue  # optional in the schema: say nothing when absent
            figures.append(f'<figure><div class="missing">no {esc(label)} cutout</div>'
                           f"<figcaption>{esc(label)}</figcaption></figure>")
            continue
        name = f"{sid}_{short}.png"
        save_cutout(image, img_dir / name)
        ny, nx = image.shape
        figures.append(f'<figure><img src="../img/alerts/{esc(name)}" alt="{esc(label)} cutout">'
                       f"<figcaption>{esc(label)} ({nx}\u00d7{ny} px, asinh from the noise to the peak)</figcaption></figure>")
    return f'<div class="cutouts">{"".join(figures)}</div>'


def _sso_html(alert: Mapping[str, Any], ss_objects: Mapping[int, Mapping[str, Any]]) -> str:
    ss = alert.get("ssSource")
    src = alert.get("diaSource") or {}
    ss_id = (ss or {}).get("ssObjectId") or src.get("ssObjectId")
    if ss is None and not ss_id:
        return ""
    parts = ["<section><h2>Solar-system object</h2><div class=\"grid2\">"]
    parts.append(f"<div><h3>SSSource</h3>{kv_table(ss or {'ssObjectId': ss_id})}</div>")
    row = ss_objects.get(int(ss_id)) if ss_id else None
    right = f"<h3>SSObject</h3>{kv_table(row)}" if row else ""
    orbit = alert.get("mpc_orbits")
    if orbit:
        right += f"<h3>MPC orbit</h3>{kv_table((k, orbit.get(k)) for k in _ORBIT_FIELDS)}"
    parts.append(f"<div>{right or '<p class=note>no SSObject row or orbit in the export</p>'}</div>")
    parts.append("</div></section>")
    return "".join(parts)


def write_alert_page(alert: Mapping[str, Any], row: AlertRow, report_dir: Path, *,
                     prev_id: int | None = None, next_id: int | None = None,
                     rank: int | None = None,
                     ss_objects: Mapping[int, Mapping[str, Any]] | None = None) -> Path:
    """Render one alert: its PNGs under ``img/alerts/`` and its page under ``alerts/``.

    Parameters
    ----------
    alert : Mapping
        The full alert record (Rubin schema).
    row : AlertRow
        Its summary line (from :func:`alertprod.report.data.alert_row`).
    report_dir : Path
        The report's root directory (``OUT/report``).
    prev_id, next_id : int, optional
        Neighbouring rendered alerts, for the page's previous/next links.
    rank : int, optional
        1-based rank by significance, shown in the subtitle.
    ss_objects : Mapping, optional
        ``ssObjectId`` -> SSObject row (from ``SSObject.fits``), shown for solar-system alerts.

    Returns
    -------
    Path
        The page written.
    """
    sid = row.diaSourceId
    img_dir = Path(report_dir) / "img" / "alerts"
    page_path = Path(report_dir) / "alerts" / alert_page_name(sid)
    page_path.parent.mkdir(parents=True, exist_ok=True)
    src = alert.get("diaSource") or {}
    obj = alert.get("diaObject")
    lc_name = f"{sid}_lc.png"
    plot_light_curve(alert, img_dir / lc_name)
    n_det = len(alert.get("prvDiaSources") or []) + 1
    n_forced = len(alert.get("prvDiaForcedSources") or [])

    pager = ['<a href="../index.html#alerts">\u2190 all alerts</a>']
    if prev_id is not None:
        pager.append(f'<a href="{esc(alert_page_name(prev_id))}">\u2039 previous</a>')
    if next_id is not None:
        pager.append(f'<a href="{esc(alert_page_name(next_id))}">next \u203a</a>')
    badges = ('<span class="badge b-sso">SSO</span> ' if row.is_sso else "") + (
        '<span class="badge b-new">new DiaObject</span>' if row.is_new
        else ('<span class="badge b-upd">update</span>' if obj else ""))
    body = [
        f'<p class="pager">{"".join(pager)}</p>',
        f"<section><h2>DiaSource {esc(sid)} {badges}</h2><div class=\"grid2\">",
        f"<div>{kv_table((k, src.get(k)) for k in _FACTS)}</div>",
        f"<div><h3>Cutouts</h3>{_cutouts_html(alert, sid, img_dir)}</div></div></section>",
        "<section><h2>Light curve</h2>",
        f'<p class="note">{n_det} detections (this one ringed) and {n_forced} forced measurements; '
        "filled circles: DiaSources, open squares: forced photometry, open diamonds: forced "
        "photometry before the first detection (precovery).</p>",
        f'<img src="../img/alerts/{esc(lc_name)}" alt="light curve"></section>',
    ]
    if obj:
        body.append("<section><h2>DiaObject</h2>"
                    f"{kv_table((k, obj.get(k)) for k in _OBJECT_FIELDS)}"
                    f"<h3>Per-band summaries (nJy)</h3>{_per_band_table(obj)}</section>")
    body.append(_sso_html(alert, ss_objects or {}))
    subtitle = (f"visit {row.visit}, detector {row.detector}, band {row.band}, "
                f"MJD {fmt(row.midpointMjdTai, 5)} TAI"
                + (f" \u2014 rank {rank} by S/N" if rank else ""))
    page_path.write_text(page(f"Alert {sid}", "".join(body), subtitle=subtitle), encoding="utf-8")
    return page_path
