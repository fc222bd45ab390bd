"""The light-curve drawing shared by the nightly report and the precovery service's page.

One implementation, two products: :func:`draw_points` draws one kind of point (marker, fill,
error bars, upper-limit arrows) in one band's colour, and :func:`light_curve_xlim` sets the
time axis; the report's alert pages (:func:`alertprod.report.plots.plot_light_curve`, a PNG)
and the precovery page (:func:`precovery_light_curve_svg`, an SVG served by the API) both
draw with them, so a light curve looks and reads the same in both.

The SVG is made for the browser: its text stays text (``svg.fonttype: none``), every
plotted point is an ``<a href="#row-N" data-row="N">`` around its marker, where N is the
row's index in the API's JSON rows (:mod:`alertprod.precovery.results`), and each kind of
point sits in a ``<g id="{quantity}-{band}-{kind}">`` group (quantity ``psf`` for the
difference flux, ``sci`` for the science flux; kind ``cached``, ``recreated``,
``limit-cached``, ``limit-recreated``).
The page links points to their rows and stamps through those ids, and its test checks that
the plotted points are the API's rows.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from matplotlib import rc_context
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from alertprod.errors import PrecoveryError

__all__ = ["BAND_COLORS", "BAND_ORDER", "CACHED", "LIMIT", "LIMIT_RECREATED", "RECREATED", "PointKind", "band_color",
           "draw_points", "light_curve_xlim", "precovery_light_curve_svg"]

#: Colours of the Rubin bands (the Rubin community plotting palette); grey for anything else.
BAND_COLORS: dict[str, str] = {"u": "#1600ea", "g": "#31de1f", "r": "#b52626", "i": "#370201",
                               "z": "#ba52ff", "y": "#61a2b3"}
BAND_ORDER = "ugrizy"
_OTHER = "#7f7f7f"


class PointKind(NamedTuple):
    """How one kind of point is drawn: legend label, matplotlib marker, filled or open."""

    label: str
    marker: str
    filled: bool


#: Precovery rows measured on a cached difference image.
CACHED = PointKind("cached difference image", "o", True)
#: Precovery rows measured on a difference image re-created from the archive.
RECREATED = PointKind("re-created difference image", "D", True)
#: Precovery rows not detected at 5σ: the 5σ upper limit, open, with a downward arrow.
LIMIT = PointKind("5σ upper limit, cached", "o", False)
#: The same on a re-created difference image.
LIMIT_RECREATED = PointKind("5σ upper limit, re-created", "D", False)


def band_color(band: str) -> str:
    """The colour of a band (grey for a band outside ``ugrizy``)."""
    return BAND_COLORS.get(band, _OTHER)


def light_curve_xlim(mjd: np.ndarray, *, min_span_days: float = 2.0) -> tuple[float, float]:
    """Time axis of a light curve: the points' span plus 5 %, at least ``min_span_days`` wide.

    Matplotlib's automatic limits around a single point widen by a fraction of the value
    itself, which for an MJD of 60,000 is thousands of days of empty axis.
    """
    t = np.asarray(mjd, dtype=float)
    t = t[np.isfinite(t)]
    if t.size == 0:
        return 0.0, 1.0
    lo, hi = float(t.min()), float(t.max())
    pad = max(0.05 * (hi - lo), 0.5 * max(min_span_days - (hi - lo), 0.0))
    return lo - pad, hi + pad


def draw_points(ax: Any, mjd: np.ndarray, flux: np.ndarray, err: np.ndarray | None, *,
                color: str, kind: PointKind, upper_limit: bool = False,
                ids: Sequence[int] | None = None, gid: str | None = None, size: float = 5.0) -> int:
    """Draw one kind of point of one band on ``ax``; returns the number drawn.

    Parameters
    ----------
    ax : matplotlib Axes
    mjd, flux : numpy.ndarray, shape (n,)
        TAI MJD and flux (nJy); points where either is not finite are left out.
    err : numpy.ndarray, shape (n,), optional
        1σ errors (nJy), drawn as bars; ignored for upper limits.
    color : str
        The band's colour.
    kind : PointKind
        Marker and fill.
    upper_limit : bool
        Draw each point as a limit: the marker at ``flux`` with an arrow pointing down.
    ids : sequence of int, shape (n,), optional
        Row ids: each marker becomes a link ``#row-<id>`` (in SVG output).
    gid : str, optional
        Id of the group holding the markers (in SVG output).
    size : float
        Marker size, points.
    """
    x = np.asarray(mjd, dtype=float)
    y = np.asarray(flux, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return 0
    x, y = x[keep], y[keep]
    face = color if kind.filled else "none"
    if upper_limit:
        span = np.diff(ax.get_ylim())[0] if ax.has_data() else 0.0
        arrow = np.full(x.shape, 0.12 * span if span > 0 else max(0.25 * float(np.nanmax(np.abs(y))), 1.0))
        ax.errorbar(x, y, yerr=arrow, uplims=True, fmt="none", color=color, ecolor=color,
                    elinewidth=0.8, capsize=0, alpha=0.8)
    elif err is not None:
        e = np.abs(np.nan_to_num(np.asarray(err, dtype=float)[keep]))
        ax.errorbar(x, y, yerr=e, fmt="none", ecolor=color, elinewidth=0.8, alpha=0.8)
    urls = None if ids is None else [f"#row-{int(i)}" for i in np.asarray(ids)[keep]]
    points = ax.scatter(x, y, s=size ** 2, marker=kind.marker, facecolors=face, edgecolors=color,
                        linewidths=1.0, zorder=3, urls=urls)
    if gid:
        points.set_gid(gid)
    return int(keep.sum())


def _column(rows: Sequence[Mapping[str, Any]], name: str) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    for k, r in enumerate(rows):
        v = r.get(name)
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[k] = float(v)
    return out


def _legend_handles(kinds: Sequence[PointKind]) -> list[Line2D]:
    return [Line2D([], [], color="0.3", marker=k.marker, ls="", ms=6, label=k.label,
                   mfc="0.3" if k.filled else "none") for k in kinds]


_ANCHOR = re.compile(r'<a xlink:href="#row-(\d+)" target="_blank">')


def precovery_light_curve_svg(rows: Sequence[Mapping[str, Any]], *, target: int | None = None) -> bytes:
    """A precovery light curve as SVG: one row of panels per band, difference and science flux.

    Left: the difference-image PSF flux with 1σ bars, or the 5σ upper limit where the row is
    not a detection (``upperLimit`` set: an open marker with a downward arrow); right: the
    science-image PSF flux with 1σ bars. Epochs measured on a re-created difference image are
    diamonds, cached ones circles.
    The time axis is shared by every panel.

    Parameters
    ----------
    rows : sequence of Mapping
        The light curve's rows as the API's JSON gives them (``midpointMjdTai``, ``band``,
        ``psfFlux``, ``psfFluxErr``, ``scienceFlux``, ``scienceFluxErr``, ``recreated``,
        ``upperLimit``, ``target``); a point's id is its index in ``rows``.
    target : int, optional
        Only the rows of this target (a request's position index).

    Returns
    -------
    bytes
        The SVG document (UTF-8).

    Raises
    ------
    PrecoveryError
        When ``rows`` is not a sequence of mappings.
    """
    if not isinstance(rows, Sequence) or not all(isinstance(r, Mapping) for r in rows):
        raise PrecoveryError("rows: expected a list of objects (the light curve's JSON rows)")
    index = np.arange(len(rows))
    if target is not None:
        index = np.array([k for k, r in enumerate(rows) if r.get("target") == target], dtype=int)
    chosen = [rows[k] for k in index]
    band = np.array([str(r.get("band") or "") for r in chosen], dtype=object)
    mjd = _column(chosen, "midpointMjdTai")
    recreated = np.array([r.get("recreated") is True for r in chosen], dtype=bool)
    limit = _column(chosen, "upperLimit")
    psf, psf_err = _column(chosen, "psfFlux"), _column(chosen, "psfFluxErr")
    sci, sci_err = _column(chosen, "scienceFlux"), _column(chosen, "scienceFluxErr")
    drawn = np.isfinite(mjd) & (np.isfinite(psf) | np.isfinite(sci) | np.isfinite(limit))
    present = set(band[drawn])
    bands = [b for b in BAND_ORDER if b in present] + sorted(present - set(BAND_ORDER))
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "alertprod"}):
        fig = Figure(figsize=(9.0, 0.9 + 2.1 * max(len(bands), 1)), layout="constrained")
        FigureCanvasSVG(fig)
        if not bands:
            ax = fig.add_subplot()
            ax.text(0.5, 0.5, "no measurements", ha="center", va="center", transform=ax.transAxes,
                    color="0.4")
            ax.set_xticks([])
            ax.set_yticks([])
            return _svg(fig)
        axes = np.atleast_2d(fig.subplots(len(bands), 2, sharex=True, squeeze=False))
        used: list[PointKind] = []
        for row_axes, b in zip(axes, bands, strict=True):
            c, in_band = band_color(b), band == b
            left, right = row_axes
            for kind, limit_kind, sel in ((CACHED, LIMIT, ~recreated),
                                          (RECREATED, LIMIT_RECREATED, recreated)):
                name = "cached" if kind is CACHED else "recreated"
                det = in_band & sel & ~np.isfinite(limit)
                if draw_points(left, mjd[det], psf[det], psf_err[det], color=c, kind=kind,
                               ids=index[det], gid=f"psf-{b}-{name}"):
                    used.append(kind)
                s = in_band & sel
                if draw_points(right, mjd[s], sci[s], sci_err[s], color=c, kind=kind, ids=index[s],
                               gid=f"sci-{b}-{name}"):
                    used.append(kind)
                lim = in_band & sel & np.isfinite(limit)
                if draw_points(left, mjd[lim], limit[lim], None, color=c, kind=limit_kind,
                               upper_limit=True, ids=index[lim], gid=f"psf-{b}-limit-{name}"):
                    used.append(limit_kind)
            left.axhline(0.0, color="0.6", lw=0.8, zorder=1)
            left.set_ylabel(f"{b}: difference\nflux [nJy]")
            right.set_ylabel(f"{b}: science\nflux [nJy]")
        axes[0, 0].set_xlim(*light_curve_xlim(mjd[drawn]))
        for ax in axes.ravel():
            ax.margins(y=0.12)  # no point on a panel's edge
            ax.xaxis.set_major_locator(MaxNLocator(5))
            ax.ticklabel_format(axis="x", useOffset=False)
            ax.grid(alpha=0.25)
        for ax in axes[-1]:
            ax.set_xlabel("MJD (TAI)")
        kinds = [k for k in (CACHED, RECREATED, LIMIT, LIMIT_RECREATED) if k in used]
        fig.legend(handles=_legend_handles(kinds), loc="outside upper center", ncol=len(kinds) or 1,
                   frameon=False, fontsize="small")
        return _svg(fig)


def _svg(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="svg")
    fig.clear()
    text = buf.getvalue().decode("utf-8")
    # matplotlib writes one <a> per point of a collection with urls; give it the row as data
    # and keep the link in the page (no new tab)
    text = _ANCHOR.sub(lambda m: f'<a xlink:href="#row-{m[1]}" data-row="{m[1]}" class="point">', text)
    return text.encode("utf-8")
