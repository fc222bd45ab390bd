"""Periodic variable stars: sinusoidal and RR-Lyrae-like light curves.

A variable's magnitude is ``m(t) = m_mean + A · s(φ)`` with phase ``φ = frac((t - t0) / P)``
and a zero-mean shape ``s``: a sinusoid, or an RR Lyrae-like sawtooth (fast rise over 15 % of
the period, slow linear decline). The template holds each variable at its phase-averaged flux,
so difference fluxes swing both ways around zero.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.sky.presets import SurveyConfig
from alertprod.sky.static_sky import _table, random_positions

__all__ = ["make_variables", "variable_flux", "variable_template_flux", "SHAPES"]

#: Light-curve shapes, coded in the ``shape`` column.
SHAPES = ("sine", "rrlyrae")

_RISE = 0.15  # fraction of the period spent rising (RR Lyrae-like)


def _shape(phase: np.ndarray, code: np.ndarray) -> np.ndarray:
    """Zero-mean magnitude shape in [-0.5, 0.5] (negative is brighter)."""
    sine = -0.5 * np.sin(2 * np.pi * phase)
    # sawtooth: brightens from +0.5 to -0.5 over _RISE, fades back over the rest; mean 0
    saw = np.where(phase < _RISE, 0.5 - phase / _RISE, -0.5 + (phase - _RISE) / (1 - _RISE))
    return np.where(code == 0, sine, saw)


def make_variables(config: SurveyConfig, rng: np.random.Generator, *, n: int | None = None) -> Table:
    """Periodic variables.

    Returns
    -------
    astropy.table.Table
        Columns of :func:`~alertprod.sky.static_sky.make_stars` (``kind`` "variable", fluxes at
        the mean magnitude ``mag_r``, uniform over ``config.variable_mag_r``) plus
        ``period_days`` (0.05-1), ``amplitude_mag`` (0.3-1.2, peak to peak), ``t0_mjd`` (epoch
        of phase 0), ``shape`` (index into :data:`SHAPES`).
    """
    n = config.n_variables if n is None else n
    ra, dec = random_positions(config, n, rng, margin_pix=20)
    t = _table("variable", ra, dec, rng.uniform(*config.variable_mag_r, n), rng.uniform(0.2, 0.8, n))
    t["period_days"] = np.exp(rng.uniform(np.log(0.05), np.log(1.0), n))
    t["amplitude_mag"] = rng.uniform(0.3, 1.2, n)
    t["t0_mjd"] = config.start_mjd_tai - rng.uniform(0, 1, n) * t["period_days"]
    t["shape"] = rng.integers(0, len(SHAPES), n).astype(np.int16)
    return t


def variable_flux(variables: Table, mjd_tai: float, band: str) -> np.ndarray:
    """True flux (nJy) of each variable at one epoch in one band, shape (n,)."""
    phase = np.mod((mjd_tai - np.asarray(variables["t0_mjd"])) / np.asarray(variables["period_days"]), 1.0)
    dm = np.asarray(variables["amplitude_mag"]) * _shape(phase, np.asarray(variables["shape"]))
    return np.asarray(variables[f"flux_{band}"]) * 10.0 ** (-0.4 * dm)


def variable_template_flux(variables: Table, band: str) -> np.ndarray:
    """Phase-averaged flux (nJy) of each variable: what a deep template holds, shape (n,)."""
    phase = (np.arange(512) + 0.5) / 512
    amp = np.asarray(variables["amplitude_mag"])[:, None]
    dm = amp * _shape(phase[None, :], np.asarray(variables["shape"])[:, None])
    return np.asarray(variables[f"flux_{band}"]) * np.mean(10.0 ** (-0.4 * dm), axis=1)

