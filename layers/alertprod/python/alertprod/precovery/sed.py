"""Colour corrections from a user's spectral energy distribution (precovery-service option E).

A forced PSF flux in nJy is the source's AB mean flux density through the band, the
photon-counting average ⟨fν⟩ = ∫ fν S(λ) dλ/λ / ∫ S(λ) dλ/λ over the LSST bandpass S. What a
user usually wants to compare across bands is the flux density at one wavelength per band. The
service reports, per band, the factor

    k_b = fν(λ_pivot,b) / ⟨fν⟩_b,        λ_pivot² = ∫ S λ dλ / ∫ S dλ/λ,

so that ``k_b · psfFlux`` is the source's fν at the band's pivot wavelength for the SED given.
A source flat in fν (AB colour 0) has k = 1 in every band; the correction grows with the SED's
curvature across the band. The bandpasses are LSST's (``lsst2023`` throughput curves shipped
by speclite: filter, optics, detector and a standard atmosphere); the band averages are
speclite's (:meth:`speclite.filters.FilterSequence.get_ab_maggies`).

An SED is given as (docs/precovery-service.md): a table of wavelengths (Å) and fλ or fν in any
consistent unit; a power law fν ∝ ν^α; or a blackbody of temperature T (K).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import astropy.units as u
import numpy as np
from astropy.modeling.physical_models import BlackBody

from alertprod.precovery.targets import TargetError

__all__ = ["BANDS", "SED_KINDS", "colour_corrections", "parse_sed"]

BANDS = ("u", "g", "r", "i", "z", "y")
SED_KINDS = ("table", "power_law", "blackbody")
#: Largest table accepted (points).
MAX_SED_POINTS = 20_000
_GRID_ANGSTROM = np.linspace(3000.0, 11500.0, 4251)  # 2 Å steps: covers every LSST band


@cache
def _filters():
    import speclite.filters  # loaded on first use: the service's only use of it

    return speclite.filters.load_filters(*(f"lsst2023-{b}" for b in BANDS))


def parse_sed(doc: Any) -> np.ndarray:
    """fν of the SED on the wavelength grid (arbitrary normalisation), from its JSON form.

    Forms: ``{"kind": "table", "wavelength_angstrom": [...], "flux": [...], "flux_per":
    "frequency" | "wavelength"}``, ``{"kind": "power_law", "alpha": a}`` (fν ∝ ν^a),
    ``{"kind": "blackbody", "temperature_k": T}``.

    Raises
    ------
    TargetError
        Naming the field, for anything malformed or physically meaningless.
    """
    if not isinstance(doc, Mapping) or doc.get("kind") not in SED_KINDS:
        raise TargetError(f"sed: expected an object with 'kind' one of {list(SED_KINDS)}")
    kind = doc["kind"]
    allowed = {"table": {"wavelength_angstrom", "flux", "flux_per"}, "power_law": {"alpha"},
               "blackbody": {"temperature_k"}}[kind] | {"kind"}
    if set(doc) - allowed:
        raise TargetError(f"sed: unknown field(s) {sorted(set(doc) - allowed)}")
    nu = 2.99792458e18 / _GRID_ANGSTROM  # Hz
    if kind == "power_law":
        alpha = doc.get("alpha")
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not -10 <= alpha <= 10:
            raise TargetError("sed: 'alpha' must be a number in [-10, 10]")
        return (nu / nu[0]) ** float(alpha)
    if kind == "blackbody":
        temp = doc.get("temperature_k")
        if isinstance(temp, bool) or not isinstance(temp, int | float) or not 500 <= temp <= 1e6:
            raise TargetError("sed: 'temperature_k' must be a number in [500, 1e6]")
        fnu = BlackBody(temperature=float(temp) * u.K)(_GRID_ANGSTROM * u.AA)
        return np.asarray(fnu.value, float)
    wave, flux = doc.get("wavelength_angstrom"), doc.get("flux")
    if not (isinstance(wave, list) and isinstance(flux, list) and 2 <= len(wave) == len(flux)
            <= MAX_SED_POINTS):
        raise TargetError(f"sed: 'wavelength_angstrom' and 'flux' must be lists of equal length "
                          f"2-{MAX_SED_POINTS}")
    try:
        w, f = np.asarray(wave, float), np.asarray(flux, float)
    except (TypeError, ValueError) as exc:
        raise TargetError("sed: 'wavelength_angstrom' and 'flux' must hold numbers") from exc
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(f)) and np.all(np.diff(w) > 0)
            and np.all(f >= 0) and w[0] > 0):
        raise TargetError("sed: wavelengths must increase and fluxes be finite and non-negative")
    if w[0] > _GRID_ANGSTROM[0] or w[-1] < _GRID_ANGSTROM[-1]:
        raise TargetError(f"sed: the table must cover {_GRID_ANGSTROM[0]:.0f}-"
                          f"{_GRID_ANGSTROM[-1]:.0f} Å (all six LSST bands)")
    per = doc.get("flux_per", "wavelength")
    if per not in ("wavelength", "frequency"):
        raise TargetError("sed: 'flux_per' must be 'wavelength' (fλ) or 'frequency' (fν)")
    on_grid = np.interp(_GRID_ANGSTROM, w, f)
    fnu = on_grid if per == "frequency" else on_grid * _GRID_ANGSTROM**2  # fν ∝ fλ λ²
    if not np.any(fnu > 0):
        raise TargetError("sed: the flux is zero everywhere in the LSST bands")
    return fnu


def colour_corrections(fnu: np.ndarray) -> dict[str, float]:
    """k_b per band (module notes) for an SED from :func:`parse_sed`.

    Returns
    -------
    dict
        ``{band: k_b}``; NaN for a band where the SED has no flux.
    """
    fnu = np.asarray(fnu, float)
    if fnu.shape != _GRID_ANGSTROM.shape:
        raise TargetError("sed: fν must be sampled on the service's wavelength grid (parse_sed)")
    filters = _filters()
    flam = fnu / _GRID_ANGSTROM**2 * (u.erg / u.s / u.cm**2 / u.AA)  # shape only: k is a ratio
    maggies = filters.get_ab_maggies(flam, _GRID_ANGSTROM * u.AA)
    out: dict[str, float] = {}
    for band, response in zip(BANDS, filters, strict=True):
        mean_fnu = float(maggies[f"lsst2023-{band}"][0]) * 3631e-23  # erg/s/cm²/Hz
        # fλ = fν c/λ², so the fλ passed above (fν/λ²) stands for a true fν of fν/c (c in Å/s)
        at_pivot = float(np.interp(_pivot(response), _GRID_ANGSTROM, fnu)) / 2.99792458e18
        out[band] = at_pivot / mean_fnu if mean_fnu > 0 else float("nan")
    return out


def _pivot(response) -> float:
    """Pivot wavelength (Å) of a speclite response: √(∫ S λ dλ / ∫ S dλ/λ)."""
    wave = np.asarray(response.wavelength, float)
    s = np.asarray(response.response, float)
    return float(np.sqrt(np.trapezoid(s * wave, wave) / np.trapezoid(s / wave, wave)))
