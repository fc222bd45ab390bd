"""Detection and measurement of DiaSources (alertprod.imaging.detection)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from astropy.wcs import WCS
from scipy.spatial import cKDTree

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.detection import DIASOURCE_COLUMNS, detect_dia_sources
from alertprod.imaging.psf import add_point_sources, gaussian_psf

INFO = ExposureInfo(visit=1234, detector=42, band="i", mjd_mid_tai=60100.125, exptime_s=30.0)
SIGMA = 100.0
PSF = gaussian_psf(4.0)
SNR_PER_NJY = np.sqrt((PSF**2).sum()) / SIGMA  # PSF S/N of 1 nJy on flat noise σ


def _wcs(ny: int, nx: int) -> WCS:
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [210.0, -30.0]
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    w.wcs.cd = np.array([[-0.2 / 3600, 0], [0, 0.2 / 3600]])
    return w


def _difference(ny=256, nx=256, seed=0) -> Exposure:
    rng = np.random.default_rng(seed)
    return Exposure(rng.normal(0, SIGMA, (ny, nx)).astype(np.float32),
                    np.full((ny, nx), SIGMA**2, np.float32), np.zeros((ny, nx), np.int32),
                    PSF, _wcs(ny, nx), INFO)


def _match(tab, x, y, radius=2.0):
    if len(tab) == 0:
        return np.full(len(x), False), np.zeros(len(x), int)
    d, i = cKDTree(np.c_[tab["x"], tab["y"]]).query(np.c_[x, y])
    return d < radius, i


def test_completeness_above_snr_6_is_at_least_95_percent_with_unbiased_fluxes():
    found, pulls, xpulls = [], [], []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        exp = _difference(512, 512, seed)
        gx, gy = np.meshgrid(np.arange(24.0, 500, 32), np.arange(24.0, 500, 32))
        x, y = gx.ravel() + rng.uniform(-0.5, 0.5, gx.size), gy.ravel() + rng.uniform(-0.5, 0.5, gx.size)
        flux = np.exp(rng.uniform(np.log(6), np.log(40), x.size)) / SNR_PER_NJY
        add_point_sources(exp.image, PSF, x, y, flux)
        tab = detect_dia_sources(exp)
        ok, i = _match(tab, x, y)
        found.append(ok)
        m = tab[i[ok]]
        pulls.append((m["psfFlux"] - flux[ok]) / m["psfFluxErr"])
        xpulls.append((m["x"] - x[ok]) / m["xErr"])
        assert len(tab) - ok.sum() <= 1  # false detections on 0.26 Mpix
    assert np.concatenate(found).mean() >= 0.95
    pull = np.concatenate(pulls)
    assert abs(pull.mean()) < 0.15 and abs(pull.std() - 1) < 0.15
    assert abs(np.concatenate(xpulls).std() - 1) < 0.25


def test_blank_sky_false_detections_per_megapixel_at_5_sigma():
    n_false, npix = 0, 0
    for seed in (3, 4, 5, 6):
        tab = detect_dia_sources(_difference(512, 512, seed))
        n_false, npix = n_false + len(tab), npix + 512 * 512
    per_mpix = n_false / (npix / 1e6)
    print(f"false detections at 5 sigma: {n_false} on {npix / 1e6:.2f} Mpix = {per_mpix:.2f} per Mpix")
    assert per_mpix < 4.0


def test_shifted_star_leaves_a_flagged_dipole():
    exp = _difference(128, 128, 7)
    add_point_sources(exp.image, PSF, [64.0], [60.0], [2e5])
    add_point_sources(exp.image, PSF, [62.0], [61.0], [-2e5])  # the template's copy, 2.2 px away
    tab = detect_dia_sources(exp)
    assert len(tab) == 1
    src = tab[0]
    assert src["isDipole"] and src["dipoleFitAttempted"] and not src["isNegative"]
    assert src["x"] == pytest.approx(63.0, abs=0.3) and src["y"] == pytest.approx(60.5, abs=0.3)
    assert abs(src["psfFlux"]) < 5 * src["psfFluxErr"]  # no net flux change
    # lobe peaks of overlapping opposite PSFs sit further apart than the shift, within ~1.5 FWHM
    assert src["dipoleMeanFlux"] > 1e5 and np.hypot(2, 1) * 0.2 < src["dipoleLength"] < 1.5 * 4 * 0.2
    assert src["reliability"] < 0.3


def test_trailed_source_gets_a_trail_length_and_point_sources_none():
    exp = _difference(160, 160, 8)
    n = 60
    t = np.linspace(-10, 10, n)  # a 20-pixel trail at 30° from the x axis
    add_point_sources(exp.image, PSF, 60 + t * np.cos(np.pi / 6), 50 + t * np.sin(np.pi / 6), np.full(n, 3e5 / n))
    add_point_sources(exp.image, PSF, [110.0, 40.0], [120.0, 120.0], [3e4, 6e4])
    tab = detect_dia_sources(exp)
    trail, _ = _match(tab, [60.0], [50.0])
    assert trail.all()
    row = tab[np.argmin(np.hypot(tab["x"] - 60, tab["y"] - 50))]
    assert row["trailLength"] == pytest.approx(20 * 0.2, rel=0.35)
    # sky position angle: x runs west (RA decreasing), y north; direction (cos30, sin30) → PA 300 ≡ 120
    assert row["trailAngle"] == pytest.approx(120.0, abs=5.0)
    stars = tab[np.hypot(tab["x"] - 60, tab["y"] - 50) > 20]
    assert len(stars) == 2 and np.all(stars["trailLength"] == 0)
    assert np.all(np.abs(stars["ixx"] / stars["ixxPSF"] - 1) < 0.2)


def test_negative_source_is_detected_and_flagged_negative():
    exp = _difference(96, 96, 9)
    add_point_sources(exp.image, PSF, [40.3], [50.6], [-4e4])
    tab = detect_dia_sources(exp)
    assert len(tab) == 1 and tab["isNegative"][0] and not tab["isDipole"][0]
    assert tab["psfFlux"][0] == pytest.approx(-4e4, abs=5 * float(tab["psfFluxErr"][0]))
    assert tab["x"][0] == pytest.approx(40.3, abs=0.2) and tab["y"][0] == pytest.approx(50.6, abs=0.2)


def test_mask_bits_become_pixel_flags_and_lower_reliability():
    exp = _difference(96, 96, 10)
    add_point_sources(exp.image, PSF, [30.0, 70.0], [30.0, 70.0], [5e4, 5e4])
    exp.mask[30, 31] |= int(MaskBit.CR)
    exp.mask[74, 70] |= int(MaskBit.SUSPECT)
    tab = detect_dia_sources(exp)
    a = tab[np.argmin(tab["x"])]
    b = tab[np.argmax(tab["x"])]
    assert a["pixelFlags_cr"] and a["pixelFlags_crCenter"] and not a["pixelFlags_suspect"]
    assert b["pixelFlags_suspect"] and not b["pixelFlags_suspectCenter"] and not b["pixelFlags_cr"]
    assert a["reliability"] < 0.2 < 0.8 < b["reliability"]


def test_science_and_snapdiff_fluxes_are_forced_at_the_source():
    diff = _difference(96, 96, 11)
    add_point_sources(diff.image, PSF, [48.2], [47.7], [3e4])
    sci = _difference(96, 96, 12)
    add_point_sources(sci.image, PSF, [48.2], [47.7], [8e4])
    tab = detect_dia_sources(diff, science=sci, snapdiff=_difference(96, 96, 13), id_start=500)
    assert len(tab) == 1
    assert tab["scienceFlux"][0] == pytest.approx(8e4, abs=5 * float(tab["scienceFluxErr"][0]))
    assert abs(tab["snapDiffFlux"][0]) < 5 * tab["snapDiffFluxErr"][0]
    assert tab["diaSourceId"][0] == 500 and tab["visit"][0] == 1234 and tab["detector"][0] == 42
    assert tab["band"][0] == "i" and tab["midpointMjdTai"][0] == 60100.125
    assert tab["ra"][0] == pytest.approx(diff.wcs.all_pix2world(tab["x"][0], tab["y"][0], 0)[0])
    assert tab["raErr"][0] > 0 and tab["decErr"][0] == pytest.approx(tab["yErr"][0] * 0.2 / 3600, rel=1e-3)
    assert tab["apFlux"][0] == pytest.approx(3e4, abs=5 * float(tab["apFluxErr"][0]))


def test_nothing_detected_returns_an_empty_table_with_every_column():
    exp = _difference(64, 64, 14)
    exp.image[:] = 0.0
    tab = detect_dia_sources(exp)
    assert len(tab) == 0 and tab.colnames == [c for c, _ in DIASOURCE_COLUMNS]


def test_columns_are_named_and_typed_as_the_apdb_diasource_table():
    from importlib.resources import files

    schema = yaml.safe_load((files("lsst.sdm.schemas") / "apdb.yaml").read_text())
    table = next(t for t in schema["tables"] if t["name"] == "DiaSource")
    types = {c["name"]: c["datatype"] for c in table["columns"]}
    kinds = {"long": "i8", "short": "i2", "int": "i4", "float": "f4", "double": "f8", "boolean": "b1",
             "char": "U1"}
    exp = _difference(64, 64, 15)
    add_point_sources(exp.image, PSF, [32.0], [32.0], [3e4])
    tab = detect_dia_sources(exp)
    for name in tab.colnames:
        assert name in types, name
        assert tab[name].dtype.str.lstrip("<>|=") == kinds[types[name]], name


def test_bad_threshold_raises():
    with pytest.raises(ImageError, match="threshold_sigma"):
        detect_dia_sources(_difference(32, 32, 16), threshold_sigma=0.0)
