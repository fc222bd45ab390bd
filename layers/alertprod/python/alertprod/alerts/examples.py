"""Realistic example Level 1 rows and cutouts, for tests, benchmarks and documentation.

Every field of the schema is filled (floats as float32-representable values, flags random), with
the physically meaningful ones (positions in deg, fluxes in nJy, times in TAI MJD) set
consistently, so that packets have the size and content of real Rubin alerts.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from astropy.io import fits

from alertprod.alerts.packet import build_alert
from alertprod.alerts.schema import record_spec

__all__ = ["example_row", "example_cutout", "example_alert"]

_BANDS = ("u", "g", "r", "i", "z", "y")


def _random_value(kind: str, rng: np.random.Generator) -> Any:
    if kind in ("float", "double"):
        return float(np.float32(rng.normal(0.0, 100.0)))
    if kind == "int":
        return int(rng.integers(0, 1000))
    if kind == "long":
        return int(rng.integers(0, 2**62))
    if kind == "boolean":
        return bool(rng.integers(0, 2))
    if kind == "string":
        return "v1"
    return None


def example_row(record: str, rng: np.random.Generator, **values: Any) -> dict[str, Any]:
    """One row with every field of ``record`` filled with random values of the right type.

    Parameters
    ----------
    record : str
        ``"diaSource"``, ``"diaForcedSource"``, ``"diaObject"`` or ``"ssSource"``.
    rng : numpy.random.Generator
        Source of randomness (use a fixed seed in tests).
    **values
        Fields to set explicitly (they override the random ones).
    """
    row = {s.name: _random_value(s.kind, rng) for s in record_spec(record)
           if s.kind not in ("record", "array", "bytes", "timestamp-micros")}
    if "band" in row:
        row["band"] = _BANDS[int(rng.integers(0, 6))]
    row.update(values)
    return row


def example_cutout(rng: np.random.Generator, *, size_pix: int = 35, flux_njy: float = 5000.0) -> bytes:
    """A FITS cutout like Rubin's: IMAGE (float32 nJy), VARIANCE and MASK extensions, ~30 KB at 35 px.

    Parameters
    ----------
    rng : numpy.random.Generator
        Noise generator.
    size_pix : int
        Side of the square cutout in pixels.
    flux_njy : float
        Flux of the Gaussian point source at the centre, nJy.
    """
    yy, xx = np.mgrid[:size_pix, :size_pix] - (size_pix - 1) / 2
    psf = np.exp(-(xx**2 + yy**2) / (2 * 1.7**2))
    image = (flux_njy * psf / psf.sum() + rng.normal(0.0, 30.0, psf.shape)).astype(np.float32)
    variance = np.full(psf.shape, 900.0, np.float32) + rng.normal(0, 5, psf.shape).astype(np.float32)
    mask = (rng.random(psf.shape) < 0.01).astype(np.int32)
    hdus = fits.HDUList([
        fits.PrimaryHDU(),
        fits.ImageHDU(image, name="IMAGE"),
        fits.ImageHDU(variance, name="VARIANCE"),
        fits.ImageHDU(mask, name="MASK"),
    ])
    buf = io.BytesIO()
    hdus.writeto(buf)
    return buf.getvalue()


def example_alert(seed: int = 0, *, n_prv_sources: int = 30, n_prv_forced: int = 30,
                  cutout_size_pix: int = 35, visit: int = 1234, detector: int = 42,
                  band: str = "r", snr: float = 25.0, cutout_science: bool = False) -> dict[str, Any]:
    """A realistic alert record: full DiaSource, DiaObject, history and two (or three) cutouts.

    Parameters
    ----------
    seed : int
        Random seed; the same seed gives the same alert.
    n_prv_sources, n_prv_forced : int
        Lengths of ``prvDiaSources`` and ``prvDiaForcedSources``.
    cutout_size_pix : int
        Side of the cutouts (35 px gives ~30 KB FITS files).
    visit, detector : int
        Visit and detector of the triggering DiaSource.
    band : str
        Band of the triggering DiaSource.
    snr : float
        Its signal-to-noise ratio.
    cutout_science : bool
        Also attach a science cutout.
    """
    rng = np.random.default_rng(seed)
    ra, dec = float(rng.uniform(0, 360)), float(rng.uniform(-60, 10))
    mjd = 60800.0 + float(rng.uniform(0, 300))
    obj_id = int(rng.integers(1, 2**62))
    src_id = int(rng.integers(1, 2**62))
    flux = float(np.float32(snr * 200.0))
    common = {"diaObjectId": obj_id, "ssObjectId": None, "parentDiaSourceId": None,
              "timeWithdrawnMjdTai": None}
    source = example_row("diaSource", rng, diaSourceId=src_id, visit=visit, detector=detector,
                         midpointMjdTai=mjd, timeProcessedMjdTai=mjd + 0.0007, ra=ra, dec=dec,
                         psfFlux=flux, psfFluxErr=200.0, snr=snr, band=band,
                         reliability=float(np.float32(rng.uniform(0.5, 1))), **common)
    prv = [example_row("diaSource", rng, midpointMjdTai=mjd - 3.0 * (k + 1), ra=ra, dec=dec,
                       band=_BANDS[k % 6], **common) for k in range(n_prv_sources)]
    forced = [example_row("diaForcedSource", rng, diaObjectId=obj_id, midpointMjdTai=mjd - 2.0 * (k + 1),
                          ra=ra, dec=dec, band=_BANDS[k % 6], timeWithdrawnMjdTai=None)
              for k in range(n_prv_forced)]
    obj = example_row("diaObject", rng, diaObjectId=obj_id, ra=ra, dec=dec, validityStartMjdTai=mjd,
                      nDiaSources=n_prv_sources + 1)
    return build_alert(
        source, dia_object=obj, prv_dia_sources=prv, prv_dia_forced_sources=forced,
        cutout_difference=example_cutout(rng, size_pix=cutout_size_pix, flux_njy=flux),
        cutout_template=example_cutout(rng, size_pix=cutout_size_pix, flux_njy=0.0),
        cutout_science=example_cutout(rng, size_pix=cutout_size_pix) if cutout_science else None,
    )
