"""The sky model of a survey and what one CCD-visit sees of it.

:class:`SkyModel` holds every simulated object (one truth table, ``truthId`` 1..N) and the
epoch-dependent positions computed once per visit (proper-motion stars, asteroids).
:func:`build_scene` projects the objects onto one CCD at one visit's epoch and returns the
sources to render, the true light-curve rows of the changing objects it covers, and the
positions that detections are matched against.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from alertprod.sky.presets import SurveyConfig
from alertprod.sky.render import Galaxies, PointSources, Scene
from alertprod.sky.transients import transient_flux
from alertprod.sky.variables import variable_flux, variable_template_flux

__all__ = ["SkyModel", "SceneTruth", "build_scene", "CHANGING_KINDS"]

#: Object kinds whose flux or position changes, so that they appear in difference images.
CHANGING_KINDS = ("variable", "transient", "hpm_star", "asteroid")

_MARGIN_PIX = 40.0


@dataclass
class SkyModel:
    """Every simulated object and the per-visit positions of the moving ones.

    Attributes
    ----------
    objects : astropy.table.Table
        The truth table (``truthId``, ``kind``, ``ra``, ``dec``, fluxes, parameters).
    index : dict of str to ndarray
        Row indices into ``objects`` of each kind.
    hpm_ra, hpm_dec : ndarray, shape (n_visits, n_hpm)
        Apparent positions of the proper-motion stars at each visit.
    hpm_template_ra, hpm_template_dec : ndarray, shape (n_hpm,)
        Their positions at the template epoch.
    asteroids : dict of ndarray, each (n_visits, n_asteroids)
        ``ra``, ``dec``, ``ra_rate``, ``dec_rate``, ``flux`` (see
        :func:`~alertprod.sky.asteroids.asteroid_ephemerides`).
    """

    objects: Table
    index: dict
    hpm_ra: np.ndarray
    hpm_dec: np.ndarray
    hpm_template_ra: np.ndarray
    hpm_template_dec: np.ndarray
    asteroids: dict
    _columns: dict = field(default_factory=dict, repr=False)  # kind -> column arrays (cache)

    def rows(self, kind: str) -> Table:
        """The truth rows of one kind."""
        return self.objects[self.index[kind]]

    def columns(self, kind: str) -> dict[str, np.ndarray]:
        """The truth rows of one kind as plain arrays (cached: slicing a Table per CCD-visit is slow)."""
        if kind not in self._columns:
            rows = self.objects[self.index[kind]]
            self._columns[kind] = {name: np.asarray(rows[name]) for name in rows.colnames}
        return self._columns[kind]


class SceneTruth(NamedTuple):
    """Truth of one CCD-visit.

    Attributes
    ----------
    lightcurve : astropy.table.Table
        One row per changing object on the CCD: ``truthId``, ``kind``, ``x``, ``y``, ``ra``,
        ``dec``, ``flux`` (true, nJy), ``templateFlux``, ``diffFlux``, ``expectedSnr`` (of the
        difference flux).
    match_truth_id, match_x, match_y : ndarray
        Positions detections are matched to (changing objects, plus the template-epoch
        position of proper-motion stars).
    bright_x, bright_y : ndarray
        Bright static stars (r < 17.5), whose residuals are labelled ``static_residual``.
    dipole_x, dipole_y : ndarray
        Static stars displaced in the science image (misalignment dipoles).
    """

    lightcurve: Table
    match_truth_id: np.ndarray
    match_x: np.ndarray
    match_y: np.ndarray
    bright_x: np.ndarray
    bright_y: np.ndarray
    dipole_x: np.ndarray
    dipole_y: np.ndarray


def _on(wcs: WCS, ra, dec, shape, margin: float):
    x, y = wcs.all_world2pix(np.asarray(ra, dtype=float), np.asarray(dec, dtype=float), 0)
    ny, nx = shape
    keep = (x > -margin - 0.5) & (x < nx - 0.5 + margin) & (y > -margin - 0.5) & (y < ny - 0.5 + margin)
    return np.asarray(x), np.asarray(y), keep


def _take(columns: dict[str, np.ndarray], keep: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[keep] for name, values in columns.items()}


def _inside(x, y, shape):
    ny, nx = shape
    return (x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5)


def build_scene(sky: SkyModel, visit_index: int, visit_row, wcs: WCS, shape: tuple[int, int],
                config: SurveyConfig, rng: np.random.Generator, *, psf_neff_pix: float,
                sky_sigma_njy: float, template_sigma_njy: float) -> tuple[Scene, SceneTruth]:
    """Project the sky onto one CCD at one visit.

    Parameters
    ----------
    sky : SkyModel
    visit_index : int
        Row of the visit in the schedule.
    visit_row : astropy.table.Row
        That row (``mjd``, ``band``, ``exptime``).
    wcs : astropy.wcs.WCS
        The CCD's WCS; ``shape`` its ``(ny, nx)``.
    config : SurveyConfig
    rng : numpy.random.Generator
        The CCD-visit's generator (picks the misaligned stars).
    psf_neff_pix : float
        Effective area of the science PSF (1/Σp²), for the expected S/N.
    sky_sigma_njy, template_sigma_njy : float
        Per-pixel noise of the science image and of the template.
    """
    mjd, band = float(visit_row["mjd"]), str(visit_row["band"])
    fcol = f"flux_{band}"
    sci, tmpl, lc = [], [], []
    match = []

    # static stars; a few displaced in the science image (misalignment dipoles)
    stars = sky.columns("star")
    x, y, k = _on(wcs, stars["ra"], stars["dec"], shape, _MARGIN_PIX)
    xs, ys, fs, mags = x[k], y[k], stars[fcol][k], stars["mag_r"][k]
    dip_bright, dip_faint = config.dipole_star_mag_r
    cand = np.flatnonzero((mags > dip_bright) & (mags < dip_faint) & _inside(xs, ys, shape)
                          & (xs > 20) & (ys > 20) & (xs < shape[1] - 20) & (ys < shape[0] - 20))
    n_dip = min(rng.poisson(config.dipoles_per_ccd), cand.size)
    dip = rng.choice(cand, n_dip, replace=False) if n_dip else np.zeros(0, dtype=int)
    shift = rng.uniform(0.3, 0.6, n_dip)
    angle = rng.uniform(0, 2 * np.pi, n_dip)
    xs_sci, ys_sci = xs.copy(), ys.copy()
    xs_sci[dip] += shift * np.cos(angle)
    ys_sci[dip] += shift * np.sin(angle)
    sci.append(PointSources(xs_sci, ys_sci, fs))
    tmpl.append(PointSources(xs, ys, fs))
    bright = (mags < 17.5) & _inside(xs, ys, shape)

    def changing(kind, ids, xk, yk, ra, dec, flux, tflux):
        inside = _inside(xk, yk, shape)
        if not inside.any():
            return
        t = {"truthId": np.asarray(ids)[inside], "kind": np.full(inside.sum(), kind, dtype="U10"),
             "x": xk[inside], "y": yk[inside], "ra": np.asarray(ra)[inside], "dec": np.asarray(dec)[inside],
             "flux": flux[inside], "templateFlux": tflux[inside]}
        t["diffFlux"] = t["flux"] - t["templateFlux"]
        err = np.sqrt(psf_neff_pix * (sky_sigma_njy**2 + template_sigma_njy**2)
                      + np.abs(t["flux"]) * config.njy_per_electron)
        t["expectedSnr"] = np.abs(t["diffFlux"]) / err
        lc.append(t)
        match.append((t["truthId"], t["x"], t["y"]))

    var = sky.columns("variable")
    x, y, k = _on(wcs, var["ra"], var["dec"], shape, _MARGIN_PIX)
    f_now, f_tmpl = variable_flux(_take(var, k), mjd, band), variable_template_flux(_take(var, k), band)
    sci.append(PointSources(x[k], y[k], f_now))
    tmpl.append(PointSources(x[k], y[k], f_tmpl))
    changing("variable", var["truthId"][k], x[k], y[k], var["ra"][k], var["dec"][k], f_now, f_tmpl)

    tr = sky.columns("transient")
    x, y, k = _on(wcs, tr["ra"], tr["dec"], shape, _MARGIN_PIX)
    f_now = transient_flux(_take(tr, k), mjd, band)
    sci.append(PointSources(x[k], y[k], f_now))
    changing("transient", tr["truthId"][k], x[k], y[k], tr["ra"][k], tr["dec"][k], f_now, np.zeros(k.sum()))

    hpm = sky.columns("hpm_star")
    if len(hpm["truthId"]):
        ra, dec = sky.hpm_ra[visit_index], sky.hpm_dec[visit_index]
        x, y, k = _on(wcs, ra, dec, shape, _MARGIN_PIX)
        xt, yt, kt = _on(wcs, sky.hpm_template_ra, sky.hpm_template_dec, shape, _MARGIN_PIX)
        f = hpm[fcol]
        sci.append(PointSources(x[k], y[k], f[k]))
        tmpl.append(PointSources(xt[kt], yt[kt], f[kt]))
        changing("hpm_star", hpm["truthId"][k], x[k], y[k], ra[k], dec[k], f[k], f[k])
        match.append((hpm["truthId"][kt], xt[kt], yt[kt]))

    snap_plus, snap_minus = [], []
    ast = sky.columns("asteroid")
    if len(ast["truthId"]):
        a = {key: v[visit_index] for key, v in sky.asteroids.items()}
        x, y, k = _on(wcs, a["ra"], a["dec"], shape, _MARGIN_PIX)
        changing("asteroid", ast["truthId"][k], x[k], y[k], a["ra"][k], a["dec"][k], a["flux"][k],
                 np.zeros(k.sum()))
        half_day = float(visit_row["exptime"]) / 2.0 / 86400.0
        cosd = np.cos(np.deg2rad(a["dec"][k]))
        for sign, out in ((-1.0, snap_plus), (1.0, snap_minus)):
            # each snap's trail: chain of points from the midpoint towards its end (0.25-pix steps)
            ex, ey, _ = _on(wcs, a["ra"][k] + sign * a["ra_rate"][k] * half_day / cosd,
                            a["dec"][k] + sign * a["dec_rate"][k] * half_day, shape, 1e9)
            length = np.hypot(ex - x[k], ey - y[k])
            n_sub = int(max(1, np.ceil(np.max(length, initial=0) / 0.25)))
            frac = (np.arange(n_sub) + 0.5) / n_sub
            px = x[k][:, None] + (ex - x[k])[:, None] * frac
            py = y[k][:, None] + (ey - y[k])[:, None] * frac
            pf = np.repeat(a["flux"][k][:, None] / n_sub, n_sub, axis=1)
            out.append(PointSources(px.ravel(), py.ravel(), pf.ravel()))
        trail = PointSources.concatenate(snap_plus + snap_minus)
        sci.append(PointSources(trail.x, trail.y, trail.flux / 2.0))  # the visit = mean of snaps

    gal = sky.columns("galaxy")
    x, y, k = _on(wcs, gal["ra"], gal["dec"], shape, 60.0)
    galaxies = Galaxies(x[k], y[k], gal[fcol][k], gal["r_eff_arcsec"][k] / config.pixel_scale_arcsec,
                        gal["sersic_n"][k], gal["ellip"][k], gal["theta_deg"][k])
    scene = Scene(PointSources.concatenate(sci), PointSources.concatenate(tmpl), galaxies,
                  PointSources.concatenate(snap_plus), PointSources.concatenate(snap_minus))
    lightcurve = _vstack_lc(lc)
    m_id = np.concatenate([np.asarray(m[0], dtype=np.int64) for m in match]) if match else np.zeros(0, np.int64)
    m_x = np.concatenate([np.asarray(m[1], dtype=float) for m in match]) if match else np.zeros(0)
    m_y = np.concatenate([np.asarray(m[2], dtype=float) for m in match]) if match else np.zeros(0)
    truth = SceneTruth(lightcurve, m_id, m_x, m_y, xs[bright], ys[bright], xs_sci[dip], ys_sci[dip])
    return scene, truth


_LC_COLUMNS = (("truthId", np.int64), ("kind", "U10"), ("x", float), ("y", float), ("ra", float),
               ("dec", float), ("flux", float), ("templateFlux", float), ("diffFlux", float),
               ("expectedSnr", float))


def _vstack_lc(parts: list[dict[str, np.ndarray]]) -> Table:
    """One light-curve table from per-kind column dicts (one Table, not one per kind: faster)."""
    t = Table()
    for name, dtype in _LC_COLUMNS:
        t[name] = np.concatenate([np.asarray(p[name], dtype=dtype) for p in parts]) if parts else np.zeros(0, dtype)
    return t
