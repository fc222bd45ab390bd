"""Survey configurations: the size and content of a simulated survey, and the named presets.

A :class:`SurveyConfig` fixes everything the simulator needs besides the seed: the focal
plane, the visit schedule, the depth, and how many objects of each kind to put on the sky.
:data:`PRESETS` holds the named sizes (``tiny`` for tests, ``night`` for the demo,
``lsst-ccd`` for benchmarks on full 4k x 4k CCDs, and ``tiny-stale-orbits``: ``tiny`` with
more asteroids and an MPCORB.DAT 150 days old).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from alertprod.errors import ConfigError

__all__ = ["BANDS", "M5_DEPTH", "SurveyConfig", "PRESETS", "get_preset", "mag_to_njy", "njy_to_mag"]

#: The six LSST bands, in wavelength order.
BANDS = ("u", "g", "r", "i", "z", "y")

#: Single-visit 5-sigma point-source depth (AB mag) per band at the reference seeing
#: (LSST science requirements, approximately).
M5_DEPTH = {"u": 23.8, "g": 24.5, "r": 24.3, "i": 23.9, "z": 23.3, "y": 22.4}


def mag_to_njy(mag):
    """AB magnitude to flux in nJy: ``10**((31.4 - m) / 2.5)``."""
    return 10.0 ** ((31.4 - mag) / 2.5)


def njy_to_mag(flux_njy):
    """Flux in nJy to AB magnitude (inverse of :func:`mag_to_njy`)."""
    return 31.4 - 2.5 * np.log10(flux_njy)


@dataclass(frozen=True)
class SurveyConfig:
    """Everything that defines a simulated survey except the random seed.

    Attributes
    ----------
    name : str
        Preset name, recorded in ``truth/survey.json``.
    n_ccd_x, n_ccd_y : int
        Grid of CCDs in the focal plane; detector id = ``iy * n_ccd_x + ix``.
    ccd_nx_pix, ccd_ny_pix : int
        CCD size in pixels.
    gap_pix : int
        Gap between neighbouring CCDs, in pixels.
    pixel_scale_arcsec : float
        Pixel scale (LSST: 0.2″).
    field_ra_deg, field_dec_deg : float
        Centre of the surveyed field (near the ecliptic and near opposition at the start date).
    start_mjd_tai : float
        TAI MJD of the first night's first visit.
    n_nights : int
        Number of nights; night ``k`` starts at ``start_mjd_tai + k``.
    visits_per_night : int
        Visits per night, taken as LSST-like pairs (two visits ``pair_gap_min`` apart).
    pair_gap_min : float
        Minutes between the two visits of a pair (LSST revisits a field ~30 min later).
    visit_gap_s : float
        Seconds between successive visits of a block (exposure plus readout and slew).
    exptime_s : float
        Exposure time of a visit (two snaps of half of it).
    dither_pix : float
        Maximum boresight dither per visit along each axis, in pixels.
    rot_dither_deg : float
        Maximum random rotation of the focal plane per visit.
    seeing_min_arcsec, seeing_max_arcsec : float
        Range of per-visit seeing FWHM.
    template_fwhm_arcsec : float
        PSF FWHM of the deep templates.
    template_depth_visits : int
        Templates are coadds of this many visits (noise lower by its square root).
    njy_per_electron : float
        Calibration used for source photon noise.
    saturation_njy : float
        Pixel level where the detector saturates (nJy per pixel).
    edge_pix : int
        Width of the ``EDGE``-masked border.
    n_stars, n_galaxies, n_variables, n_transients, n_hpm_stars, n_asteroids, n_fast_asteroids : int
        Object counts over the whole field.
    bright_star_fraction : float
        Fraction of the stars drawn bright (r 13.5-16: they saturate, bleed, and leave residuals).
    n_bad_columns : int
        Bad columns per CCD.
    cosmic_rays_per_ccd : float
        Mean cosmic-ray hits per CCD-visit.
    cr_masked_fraction : float
        Fraction of cosmic rays found, masked ``CR`` and interpolated over; the rest are left as
        unflagged residuals (bogus sources).
    hot_pixels_per_ccd, edge_junk_per_ccd, dipoles_per_ccd : float
        Mean numbers of unmasked bogus artifacts per CCD-visit.
    dipole_star_mag_r : tuple of float
        ``(bright, faint)`` r magnitudes of the static stars a misalignment dipole may displace
        (default 17-20.5). Fainter stars give faint static sources DiaObjects, hence forced rows
        at science S/N 10-30 (a dipole on a star of r ≳ 22 is rarely detected).
    variable_mag_r : tuple of float
        ``(bright, faint)`` range of the variables' mean r magnitudes, drawn uniformly
        (default 17-21).
    snapdiff_fraction : float
        Fraction of visits for which a snap-difference image is written.
    edge_transient : bool
        Place a transient that appears within a few pixels of a shared CCD edge in one visit and
        falls on the neighbouring CCD in the next visit (for the pipeline's concurrency tests).
    mpcorb_epoch_offset_days : float
        ``mpcorb.dat`` holds osculating elements at the whole TT day nearest
        ``start_mjd_tai − mpcorb_epoch_offset_days`` (the MPC keeps a standard epoch for
        months); the asteroids move on perturbed orbits, so two-body predictions from those
        elements drift by arcseconds over months. 0: the survey's first day.
    mpcorb_u_weights : tuple of float
        Relative frequencies of the uncertainty parameter U = 0, 1, 2, … of the asteroids'
        orbits; each orbit in ``mpcorb.dat`` then carries its U and a mean-motion error of
        that size (:mod:`alertprod.sky.orbit_errors`). Empty: every orbit U 0 and exact.
    n_workers : int
        Processes rendering CCDs in parallel (1: in-process).
    """

    name: str = "custom"
    n_ccd_x: int = 2
    n_ccd_y: int = 2
    ccd_nx_pix: int = 256
    ccd_ny_pix: int = 256
    gap_pix: int = 40
    pixel_scale_arcsec: float = 0.2
    field_ra_deg: float = 10.0
    field_dec_deg: float = 4.0
    start_mjd_tai: float = 60958.10
    n_nights: int = 3
    visits_per_night: int = 4
    pair_gap_min: float = 30.0
    visit_gap_s: float = 40.0
    exptime_s: float = 30.0
    dither_pix: float = 30.0
    rot_dither_deg: float = 0.5
    seeing_min_arcsec: float = 0.6
    seeing_max_arcsec: float = 1.2
    template_fwhm_arcsec: float = 0.7
    template_depth_visits: int = 20
    njy_per_electron: float = 0.5
    saturation_njy: float = 60000.0
    edge_pix: int = 4
    n_stars: int = 40
    n_galaxies: int = 15
    n_variables: int = 5
    n_transients: int = 5
    n_hpm_stars: int = 2
    n_asteroids: int = 2
    n_fast_asteroids: int = 0
    bright_star_fraction: float = 0.05
    n_bad_columns: int = 1
    cosmic_rays_per_ccd: float = 3.0
    cr_masked_fraction: float = 0.8
    hot_pixels_per_ccd: float = 0.5
    edge_junk_per_ccd: float = 0.3
    dipoles_per_ccd: float = 0.3
    dipole_star_mag_r: tuple[float, float] = (17.0, 20.5)
    variable_mag_r: tuple[float, float] = (17.0, 21.0)
    snapdiff_fraction: float = 0.5
    edge_transient: bool = True
    mpcorb_epoch_offset_days: float = 0.0
    mpcorb_u_weights: tuple[float, ...] = ()
    n_workers: int = 1

    def __post_init__(self) -> None:
        positive = ("n_ccd_x", "n_ccd_y", "ccd_nx_pix", "ccd_ny_pix", "n_nights", "visits_per_night",
                    "pixel_scale_arcsec", "exptime_s", "template_depth_visits", "njy_per_electron",
                    "saturation_njy", "n_workers")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"SurveyConfig.{name} must be positive, got {getattr(self, name)!r}")
        if min(self.ccd_nx_pix, self.ccd_ny_pix) < 64:
            raise ConfigError("SurveyConfig.ccd_nx_pix/ccd_ny_pix must be at least 64 pixels")
        if not 0 < self.seeing_min_arcsec <= self.seeing_max_arcsec:
            raise ConfigError("SurveyConfig.seeing_min_arcsec must be positive and <= seeing_max_arcsec")
        for name in ("snapdiff_fraction", "bright_star_fraction", "cr_masked_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"SurveyConfig.{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if self.n_ccd_x * self.n_ccd_y > 999:
            raise ConfigError("SurveyConfig: at most 999 detectors")
        if not (np.isfinite(self.mpcorb_epoch_offset_days) and 0.0 <= self.mpcorb_epoch_offset_days
                <= 3650.0):
            raise ConfigError("SurveyConfig.mpcorb_epoch_offset_days must lie in [0, 3650] days, "
                              f"got {self.mpcorb_epoch_offset_days!r}")
        weights = np.asarray(self.mpcorb_u_weights, dtype=float)
        if weights.size and (weights.ndim != 1 or weights.size > 10 or np.any(~(weights >= 0.0))
                             or not weights.sum() > 0.0):
            raise ConfigError("SurveyConfig.mpcorb_u_weights must be empty or 1-10 non-negative "
                              f"weights (U = 0, 1, ...) with a positive sum, got "
                              f"{self.mpcorb_u_weights!r}")
        object.__setattr__(self, "mpcorb_u_weights", tuple(float(w) for w in weights.ravel()))
        for name in ("dipole_star_mag_r", "variable_mag_r"):
            value = getattr(self, name)
            try:
                bright, faint = (float(m) for m in value)
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"SurveyConfig.{name} must be a (bright, faint) pair of r "
                                  f"magnitudes, got {value!r}") from exc
            if not 10.0 <= bright < faint <= 30.0:
                raise ConfigError(f"SurveyConfig.{name} must satisfy 10 <= bright < faint <= 30 "
                                  f"(r mag), got {value!r}")
            object.__setattr__(self, name, (bright, faint))

    @property
    def n_detectors(self) -> int:
        """Number of CCDs in the focal plane."""
        return self.n_ccd_x * self.n_ccd_y

    @property
    def n_visits(self) -> int:
        """Number of visits in the survey."""
        return self.n_nights * self.visits_per_night

    def replace(self, **changes) -> SurveyConfig:
        """A copy with some fields changed (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


PRESETS: dict[str, SurveyConfig] = {
    # the test suite's survey: 48 CCD-visits of 256 x 256 over three nights, seconds to generate
    "tiny": SurveyConfig(name="tiny", n_nights=3, n_workers=2),
    # the demo: 2 x 2 CCDs of 1024 x 1024, two nights of 6 visits (48 CCD-visits, which the
    # embedded AWS stack replays in a minute or two)
    "night": SurveyConfig(
        name="night", n_ccd_x=2, n_ccd_y=2, ccd_nx_pix=1024, ccd_ny_pix=1024, gap_pix=60,
        n_nights=2, visits_per_night=6, dither_pix=150.0, n_stars=400, n_galaxies=180,
        n_variables=30, n_transients=40, n_hpm_stars=8, n_asteroids=24, n_fast_asteroids=3,
        bright_star_fraction=0.01, n_bad_columns=2, cosmic_rays_per_ccd=20.0, cr_masked_fraction=0.93,
        hot_pixels_per_ccd=1.0, edge_junk_per_ccd=0.5, dipoles_per_ccd=0.8,
        mpcorb_epoch_offset_days=150.0, n_workers=2,
    ),
    # tiny with an MPCORB.DAT 150 days old and ten asteroids: two-body predictions from it miss
    # the asteroids by arcseconds (the nightly orbit refresh's test survey)
    "tiny-stale-orbits": SurveyConfig(name="tiny-stale-orbits", n_nights=3, n_asteroids=9,
                                      n_fast_asteroids=1, mpcorb_epoch_offset_days=150.0,
                                      n_workers=2),
    # four full LSST CCDs, a few visits: for benchmarks
    "lsst-ccd": SurveyConfig(
        name="lsst-ccd", n_ccd_x=2, n_ccd_y=2, ccd_nx_pix=4096, ccd_ny_pix=4096, gap_pix=100,
        n_nights=1, visits_per_night=3, dither_pix=300.0, n_stars=4000, n_galaxies=2000,
        n_variables=100, n_transients=100, n_hpm_stars=20, n_asteroids=20, n_fast_asteroids=3,
        bright_star_fraction=0.02, n_bad_columns=3, cosmic_rays_per_ccd=200.0, cr_masked_fraction=0.9,
        hot_pixels_per_ccd=5.0, edge_junk_per_ccd=2.0, dipoles_per_ccd=5.0, n_workers=2,
    ),
}


def get_preset(name: str, **overrides) -> SurveyConfig:
    """The named preset, optionally with some fields changed.

    Raises
    ------
    ConfigError
        When ``name`` is not a preset or an override names no field.
    """
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r} is not one of {sorted(PRESETS)}")
    try:
        return PRESETS[name].replace(**overrides)
    except TypeError as exc:
        raise ConfigError(f"preset override: {exc}") from exc
