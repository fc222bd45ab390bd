"""The figures of the night report, drawn with matplotlib's object-oriented API on the Agg canvas.

Each function takes plain data, writes one PNG and returns its path. No function touches pyplot,
so nothing leaks into a global figure registry: every :class:`~matplotlib.figure.Figure` is local
and cleared after saving. Cutouts are written pixel-for-pixel with :func:`matplotlib.image.imsave`
(the browser scales them up), which is an order of magnitude faster than a figure per cutout.
Light curves draw their points with :mod:`alertprod.plotting.light_curve`, the drawing the
precovery service's page uses too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.image import imsave
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, MaxNLocator

from alertprod.plotting.light_curve import (
    BAND_COLORS,
    BAND_ORDER,
    PointKind,
    draw_points,
    light_curve_xlim,
)
from alertprod.report.data import AlertRow

__all__ = [
    "BAND_COLORS",
    "plot_sky_map",
    "plot_alerts_per_visit",
    "plot_ccd_seconds",
    "plot_stage_seconds",
    "plot_dynamodb_requests",
    "NO_DATA_COLOR",
    "cutout_display",
    "save_cutout",
    "light_curve_xlim",
    "plot_light_curve",
]

_OTHER = "#7f7f7f"
_BAND_ORDER = BAND_ORDER
_KIND_MARKERS = {"update": ("o", "DiaObject update"), "new": ("*", "new DiaObject"),
                 "sso": ("^", "solar-system object")}


def _color(band: str) -> str:
    return BAND_COLORS.get(band, _OTHER)


def _bands(values: Sequence[str]) -> list[str]:
    present = set(values)
    return [b for b in _BAND_ORDER if b in present] + sorted(present - set(_BAND_ORDER))


def _figure(width_in: float, height_in: float, *, margins: tuple[float, float, float, float] | None = None
            ) -> Figure:
    """A figure on its own Agg canvas; fixed ``(left, right, bottom, top)`` margins, when given,
    replace the constrained layout (which costs a second draw: worth it only for the few
    one-off figures, not for the hundreds of light curves)."""
    fig = Figure(figsize=(width_in, height_in), layout=None if margins else "constrained")
    if margins:
        left, right, bottom, top = margins
        fig.subplots_adjust(left=left, right=right, bottom=bottom, top=top)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    fig.clear()
    return path


def _no_data(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _unwrap_ra(ra_deg: np.ndarray) -> np.ndarray:
    """RA shifted by multiples of 360 deg so that points across RA = 0 stay together."""
    if ra_deg.size == 0:
        return ra_deg
    centre = np.degrees(np.arctan2(np.sin(np.radians(ra_deg)).mean(), np.cos(np.radians(ra_deg)).mean()))
    return (ra_deg - centre + 180.0) % 360.0 - 180.0 + centre


def plot_sky_map(rows: Sequence[AlertRow], path: Path) -> Path:
    """Scatter of the alerts on the sky, coloured by band, marker by kind (new/update/SSO).

    Parameters
    ----------
    rows : sequence of AlertRow
        The alerts (positions in degrees).
    path : Path
        PNG to write.
    """
    fig = _figure(7.5, 5.0)
    ax = fig.add_subplot()
    good = [r for r in rows if np.isfinite(r.ra) and np.isfinite(r.dec)]
    if not good:
        _no_data(ax, "no alerts")
        return _save(fig, path)
    ra = _unwrap_ra(np.array([r.ra for r in good]))
    dec = np.array([r.dec for r in good])
    band = np.array([r.band for r in good])
    kind = np.array([r.kind for r in good])
    for b in _bands(list(band)):
        for k, (marker, _) in _KIND_MARKERS.items():
            sel = (band == b) & (kind == k)
            if sel.any():
                ax.scatter(ra[sel], dec[sel], s=60 if k != "update" else 18, marker=marker,
                           color=_color(b), edgecolors="k" if k != "update" else "none",
                           linewidths=0.4, alpha=0.85)
    handles = [ax.scatter([], [], color=_color(b), s=18, label=b or "?") for b in _bands(list(band))]
    handles += [ax.scatter([], [], marker=m, color="0.5", edgecolors="k", s=40, label=label)
                for k, (m, label) in _KIND_MARKERS.items() if (kind == k).any()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize="small")
    ax.invert_xaxis()  # east to the left, as on the sky
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x % 360.0:g}"))  # unwrapped RA
    ax.set_xlabel("RA [deg]")
    ax.set_ylabel("Dec [deg]")
    ax.set_title(f"{len(good)} alerts")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def plot_alerts_per_visit(rows: Sequence[AlertRow], path: Path) -> Path:
    """Alerts per visit against the visit's time, coloured by band, with the cumulative count.

    Parameters
    ----------
    rows : sequence of AlertRow
        The alerts (times in TAI MJD).
    path : Path
        PNG to write.
    """
    fig = _figure(7.5, 3.6)
    ax = fig.add_subplot()
    by_visit: dict[int, list[AlertRow]] = defaultdict(list)
    for r in rows:
        if np.isfinite(r.midpointMjdTai):
            by_visit[r.visit].append(r)
    if not by_visit:
        _no_data(ax, "no alerts")
        return _save(fig, path)
    visits = sorted(by_visit, key=lambda v: min(r.midpointMjdTai for r in by_visit[v]))
    mjd = np.array([min(r.midpointMjdTai for r in by_visit[v]) for v in visits])
    count = np.array([len(by_visit[v]) for v in visits])
    band = [max(set(x.band for x in by_visit[v]), key=[x.band for x in by_visit[v]].count)
            for v in visits]
    mjd0 = float(np.floor(mjd.min()))
    hours = (mjd - mjd0) * 24.0
    ax.vlines(hours, 0, count, colors=[_color(b) for b in band], linewidth=1.5, alpha=0.7)
    for b in _bands(band):
        sel = np.array([x == b for x in band])
        ax.scatter(hours[sel], count[sel], color=_color(b), s=16, label=b or "?", zorder=3)
    ax.set_xlabel(f"hours since MJD {mjd0:.0f} (TAI)")
    ax.set_ylabel("alerts per visit")
    ax.set_ylim(0, 1.25 * count.max())  # headroom for the legend
    ax.legend(loc="upper left", frameon=False, fontsize="small", ncol=6)
    twin = ax.twinx()
    twin.plot(hours, np.cumsum(count), color="0.3", lw=1, ls="--", label="cumulative")
    twin.set_ylabel("cumulative alerts", color="0.3")
    twin.set_ylim(bottom=0)
    ax.set_title(f"{int(count.sum())} alerts in {len(visits)} visits")
    return _save(fig, path)


def plot_ccd_seconds(seconds: Sequence[float], path: Path, *, p50: float | None = None,
                     p95: float | None = None) -> Path:
    """Histogram of the wall-clock seconds per CCD with the median and 95th-percentile lines.

    Parameters
    ----------
    seconds : sequence of float
        Processing time of each CCD, s.
    path : Path
        PNG to write.
    p50, p95 : float, optional
        Percentiles to mark, s (computed from ``seconds`` when not given).
    """
    fig = _figure(6.0, 3.6)
    ax = fig.add_subplot()
    s = np.asarray([x for x in seconds if x is not None and np.isfinite(x)], dtype=float)
    if s.size == 0:
        _no_data(ax, "no per-CCD timings")
        return _save(fig, path)
    p50 = float(np.percentile(s, 50)) if p50 is None else p50
    p95 = float(np.percentile(s, 95)) if p95 is None else p95
    ax.hist(s, bins=min(40, max(5, s.size // 3)), color="#4c72b0", alpha=0.8)
    ax.axvline(p50, color="k", ls="-", label=f"p50 = {p50:.2f} s")
    ax.axvline(p95, color="#c44e52", ls="--", label=f"p95 = {p95:.2f} s")
    ax.set_xlabel("seconds per CCD")
    ax.set_ylabel("CCDs")
    ax.set_title(f"{s.size} CCDs")
    ax.legend(frameon=False)
    return _save(fig, path)


def plot_stage_seconds(per_ccd: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Stacked bars of the mean seconds per pipeline stage, one bar per visit and one for all.

    Parameters
    ----------
    per_ccd : sequence of Mapping
        ``summary.json["perCcd"]`` entries: ``visit``, ``mjdTai`` and ``stages`` (name -> s).
    path : Path
        PNG to write.
    """
    fig = _figure(7.5, 3.8)
    ax = fig.add_subplot()
    entries = [e for e in per_ccd if isinstance(e.get("stages"), Mapping) and e["stages"]]
    if not entries:
        _no_data(ax, "no per-stage timings")
        return _save(fig, path)
    stages: list[str] = []
    for e in entries:
        stages += [k for k in e["stages"] if k not in stages]
    groups: dict[Any, list[Mapping[str, Any]]] = defaultdict(list)
    for e in entries:
        groups[e.get("visit", "?")].append(e)
    order = sorted(groups, key=lambda v: (min(float(x.get("mjdTai") or 0) for x in groups[v]), str(v)))
    labels = ["all"] + [str(v) for v in order]
    members = [entries] + [groups[v] for v in order]
    means = np.array([[np.mean([float(x["stages"].get(s) or 0.0) for x in m]) for s in stages]
                      for m in members])
    cmap = colormaps["tab20"]
    x = np.arange(len(labels))
    bottom = np.zeros(len(labels))
    for j, stage in enumerate(stages):
        ax.bar(x, means[:, j], bottom=bottom, color=cmap(j % 20), label=stage, width=0.8)
        bottom += means[:, j]
    step = max(1, len(labels) // 25)
    ax.set_xticks(x[::step], labels[::step], rotation=60 if len(labels) > 6 else 0, fontsize="small")
    ax.set_xlabel("visit")
    ax.set_ylabel("mean seconds per CCD")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize="small")
    return _save(fig, path)


def plot_dynamodb_requests(per_ccd: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """DynamoDB requests per CCD: their histogram and their growth with the number of DiaSources.

    Parameters
    ----------
    per_ccd : sequence of Mapping
        ``summary.json["perCcd"]`` entries: ``dynamodbRequests`` and ``nDiaSources``.
    path : Path
        PNG to write.
    """
    fig = _figure(7.5, 3.4)
    ax1, ax2 = fig.subplots(1, 2)
    req = np.array([float(e.get("dynamodbRequests")) if e.get("dynamodbRequests") is not None
                    else np.nan for e in per_ccd], dtype=float)
    nsrc = np.array([float(e.get("nDiaSources")) if e.get("nDiaSources") is not None
                     else np.nan for e in per_ccd], dtype=float)
    ok = np.isfinite(req)
    if not ok.any():
        _no_data(ax1, "no DynamoDB request counts")
        _no_data(ax2, "")
        return _save(fig, path)
    ax1.hist(req[ok], bins=min(30, max(5, int(ok.sum()) // 3)), color="#55a868", alpha=0.85)
    ax1.axvline(float(np.mean(req[ok])), color="k", label=f"mean = {np.mean(req[ok]):.1f}")
    ax1.set_xlabel("DynamoDB requests per CCD")
    ax1.set_ylabel("CCDs")
    ax1.legend(frameon=False)
    both = ok & np.isfinite(nsrc)
    if both.any():
        ax2.scatter(nsrc[both], req[both], s=10, color="#55a868")
        ax2.set_xlabel("DiaSources in the CCD")
        ax2.set_ylabel("DynamoDB requests")
    else:
        _no_data(ax2, "no DiaSource counts")
    return _save(fig, path)


#: Colour of cutout pixels without data (off the detector, NaN): apart from any grey level.
NO_DATA_COLOR = "#4a6fa5"


def cutout_display(image: np.ndarray) -> np.ma.MaskedArray:
    """Display levels in [0, 1] of a cutout: noise visible, a bright core not clipped.

    σ is the noise (from the median absolute deviation, so sources do not inflate it). When
    nothing lies below the median by more than 5σ, levels run from the median less 2σ to the
    brightest pixel with an asinh stretch linear over ~3σ: the background shows its noise and
    a source of any brightness keeps its profile (zscale limits, tuned to the background, made
    bright sources a flat white disc). When something does (a negative source on a difference
    image), the stretch is the same asinh on both sides of the median, which is drawn mid-grey:
    negative sources go dark with their profile, positive ones bright. Pixels without data are
    masked.
    """
    data = np.asarray(image, dtype=float)
    finite = np.isfinite(data)
    if not finite.any():
        return np.ma.masked_all(data.shape)
    values = data[finite]
    median = float(np.median(values))
    sigma = 1.4826 * float(np.median(np.abs(values - median)))
    lo, hi = median - 2.0 * sigma, float(values.max())
    if not hi > lo:
        return np.ma.MaskedArray(np.full(data.shape, 0.5), mask=~finite)
    filled = np.where(finite, data, median)
    if float(values.min()) < median - 5.0 * sigma:
        # Symmetric asinh about the median, written out: astropy's stretches start at the
        # lower limit, and a difference image needs its zero in the middle.
        reach = max(hi - median, median - float(values.min()))
        soft = max(3.0 * sigma, 1e-4 * reach)
        scaled = 0.5 + 0.5 * np.arcsinh((filled - median) / soft) / np.arcsinh(reach / soft)
        return np.ma.MaskedArray(np.clip(scaled, 0.0, 1.0), mask=~finite)
    linear = float(np.clip(3.0 * sigma / (hi - lo), 1e-4, 1.0)) if sigma > 0 else 0.1
    norm = ImageNormalize(vmin=lo, vmax=hi, stretch=AsinhStretch(linear), clip=True)
    scaled = np.asarray(np.ma.filled(norm(filled), 0.0), dtype=float)
    return np.ma.MaskedArray(scaled, mask=~finite)


def save_cutout(image: np.ndarray, path: Path) -> Path:
    """Write a cutout as a grey PNG, one pixel per pixel (levels: :func:`cutout_display`).

    Parameters
    ----------
    image : numpy.ndarray, shape (ny, nx)
        Pixel values (NaN allowed: drawn in :data:`NO_DATA_COLOR`); row 0 is the bottom of the
        image, as in FITS.
    path : Path
        PNG to write.
    """
    shown = cutout_display(image)
    cmap = colormaps["gray"].with_extremes(bad=NO_DATA_COLOR)
    rgba = cmap(shown)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imsave(path, rgba, origin="lower")
    return path


def _points(records: Sequence[Mapping[str, Any]] | None) -> tuple[np.ndarray, ...]:
    recs = list(records or [])
    mjd = np.array([r.get("midpointMjdTai") if r.get("midpointMjdTai") is not None else np.nan
                    for r in recs], dtype=float)
    flux = np.array([r.get("psfFlux") if r.get("psfFlux") is not None else np.nan for r in recs],
                    dtype=float)
    err = np.array([r.get("psfFluxErr") if r.get("psfFluxErr") is not None else np.nan for r in recs],
                   dtype=float)
    band = np.array([str(r.get("band") or "") for r in recs], dtype=object)
    return mjd, flux, err, band


#: Kinds of point on an alert's light curve (drawn by :func:`alertprod.plotting.draw_points`,
#: as the precovery page's are).
_DETECTED = PointKind("detected", "o", True)
_FORCED = PointKind("forced", "s", False)
_PRECOVERY = PointKind("precovery", "D", False)


def plot_light_curve(alert: Mapping[str, Any], path: Path) -> Path:
    """Light curve of an alert's object: difference-image PSF flux (nJy) against TAI MJD.

    Detections (``prvDiaSources`` and the alert's own DiaSource, which is ringed) are filled
    circles; forced measurements (``prvDiaForcedSources``) are open squares, and those before the
    first detection (precovery) are open diamonds. One colour per band; error bars are 1 sigma.

    Parameters
    ----------
    alert : Mapping
        An alert record of the Rubin schema.
    path : Path
        PNG to write.
    """
    fig = _figure(8.0, 3.6, margins=(0.13, 0.83, 0.14, 0.97))
    ax = fig.add_subplot()
    this = alert.get("diaSource") or {}
    det = _points(list(alert.get("prvDiaSources") or []) + [this])
    forced = _points(alert.get("prvDiaForcedSources"))
    if not (np.isfinite(det[0]) & np.isfinite(det[1])).any() and not np.isfinite(forced[1]).any():
        _no_data(ax, "no photometry")
        return _save(fig, path)
    first_det = np.nanmin(det[0]) if np.isfinite(det[0]).any() else np.inf
    bands = _bands(list(det[3]) + list(forced[3]))
    used: list[PointKind] = []  # the kinds drawn, for the legend
    for b in bands:
        mjd, flux, err, band = forced
        for sel, kind in (((band == b) & (mjd >= first_det), _FORCED),
                          ((band == b) & (mjd < first_det), _PRECOVERY)):
            if draw_points(ax, mjd[sel], flux[sel], err[sel], color=_color(b), kind=kind, size=4.0):
                used.append(kind)
        mjd, flux, err, band = det
        sel = band == b
        if draw_points(ax, mjd[sel], flux[sel], err[sel], color=_color(b), kind=_DETECTED):
            used.append(_DETECTED)
    # one legend entry per band (colour) and per kind of point (marker), not one per pair
    handles = [Line2D([], [], color=_color(b), marker="o", ls="", label=b or "?") for b in bands]
    for kind in dict.fromkeys(used):
        handles.append(Line2D([], [], color="0.35", marker=kind.marker, ls="", label=kind.label,
                              mfc="0.35" if kind.filled else "none"))
    if this.get("midpointMjdTai") is not None and this.get("psfFlux") is not None:
        ax.scatter([this["midpointMjdTai"]], [this["psfFlux"]], s=160, facecolors="none",
                   edgecolors="k", linewidths=1.2, zorder=4)
        handles.append(Line2D([], [], color="k", marker="o", mfc="none", ms=11, ls="",
                              label="this alert"))
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlim(*light_curve_xlim(np.concatenate([det[0], forced[0]])))
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.set_xlabel("MJD (TAI)")
    ax.set_ylabel("PSF flux on difference [nJy]")
    ax.ticklabel_format(axis="x", useOffset=False)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize="small")
    return _save(fig, path)
