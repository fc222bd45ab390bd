"""The simulator's fast FITS writers give exactly the bytes of the ``formats`` writers."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from alertprod.formats import (
    Exposure,
    ExposureInfo,
    read_diasource_catalog,
    read_exposure,
    write_diasource_catalog,
    write_exposure,
)
from alertprod.sky import get_preset
from alertprod.sky.fastfits import diasource_catalog_bytes, exposure_bytes
from alertprod.sky.focal_plane import FocalPlane, Pointing
from alertprod.sky.writer import build_survey, render_ccd_visit

_SMALL = dict(n_ccd_x=2, n_ccd_y=1, ccd_nx_pix=96, ccd_ny_pix=80, gap_pix=20, n_nights=1,
              visits_per_night=3, dither_pix=10.0, n_stars=12, n_galaxies=4, n_variables=3,
              n_transients=3, n_hpm_stars=1, n_asteroids=1, cosmic_rays_per_ccd=6.0,
              snapdiff_fraction=1.0)


def _wcs():
    return FocalPlane(get_preset("tiny")).wcs(Pointing(10.0, 4.0, 0.3), 1)


def test_rendered_ccd_visit_files_are_byte_identical_to_the_formats_writers(tmp_path, monkeypatch):
    import alertprod.sky.writer as writer

    catalogs = []  # (what the simulator wrote, what formats writes from the same objects)

    def spy(table, info, wcs, detsize):
        data = diasource_catalog_bytes(table, info, wcs, detsize)
        catalogs.append((data, write_diasource_catalog(table, info, wcs, detsize), len(table)))
        return data

    monkeypatch.setattr(writer, "diasource_catalog_bytes", spy)
    survey = build_survey(get_preset("tiny", **_SMALL), 4)
    render_ccd_visit(survey, 1, 0, tmp_path)
    images = sorted((tmp_path / "images").rglob("*.fits"))
    assert {p.name for p in images} == {"science.fits", "template.fits", "difference.fits", "snapdiff.fits"}
    for path in images:
        data = path.read_bytes()
        assert write_exposure(read_exposure(data)) == data, path.name
    (cat_path,) = (tmp_path / "diasources").rglob("*.fits")
    ((written, expected, n_rows),) = catalogs
    assert n_rows > 0 and written == expected == cat_path.read_bytes()


@pytest.mark.parametrize("n_rows", [0, 1, 7])
def test_catalog_with_every_column_kind_matches_the_formats_writer(n_rows):
    rng = np.random.default_rng(n_rows)
    table = Table({
        "diaSourceId": np.arange(n_rows, dtype=np.int64) + 10**12,
        "detector": np.full(n_rows, 3, dtype=np.int16),
        "band": np.full(n_rows, "r", dtype="U1"),
        "ra": rng.uniform(0, 360, n_rows), "dec": rng.uniform(-90, 90, n_rows),
        "raErr": np.full(n_rows, np.nan, dtype=np.float32), "decErr": rng.random(n_rows).astype(np.float32),
        "x": rng.random(n_rows).astype(np.float32), "y": rng.random(n_rows).astype(np.float32),
        "psfFlux": rng.normal(size=n_rows).astype(np.float32), "psfFluxErr": np.ones(n_rows, np.float32),
        "snr": rng.normal(size=n_rows).astype(np.float32), "psfNdata": np.arange(n_rows, dtype=np.int32),
        "isDipole": rng.random(n_rows) < 0.5,
    })
    table["psfFlux"].unit = "nJy"
    info = ExposureInfo(2001, 3, "r", 60959.1, 30.0)
    expected = write_diasource_catalog(table, info, _wcs(), (96, 80))
    assert diasource_catalog_bytes(table, info, _wcs(), (96, 80)) == expected
    assert len(read_diasource_catalog(expected).table) == n_rows


def test_exposure_with_extra_cards_and_strided_planes_matches_the_formats_writer():
    rng = np.random.default_rng(2)
    big = rng.normal(size=(60, 100))
    psf = np.outer(np.hanning(9), np.hanning(9))
    exp = Exposure(big[:, ::2], np.abs(big[:, 1::2]), (rng.random((60, 50)) < 0.1).astype(np.int32) * 4,
                   psf / psf.sum(), _wcs(), ExposureInfo(1003, 1, "g", 60958.2, 30.0),
                   {"SEEING": 0.9, "ORIGIN": "simulator"})
    assert exposure_bytes(exp) == write_exposure(exp)
    # the cached primary header follows the metadata
    other = Exposure(exp.image, exp.variance, exp.mask, exp.psf, exp.wcs,
                     ExposureInfo(1004, 1, "g", 60958.3, 30.0), {})
    assert exposure_bytes(other) == write_exposure(other)


def test_catalog_with_masked_values_is_left_to_astropy_and_still_matches():
    table = Table({"diaSourceId": np.arange(3, dtype=np.int64), "ra": [1.0, 2.0, 3.0], "dec": [0.0, 0.1, 0.2],
                   "raErr": [0.1, 0.1, 0.1], "decErr": [0.1, 0.1, 0.1], "x": [1.0, 2.0, 3.0],
                   "y": [1.0, 2.0, 3.0], "psfFlux": [1.0, 2.0, 3.0], "psfFluxErr": [1.0, 1.0, 1.0],
                   "snr": [1.0, 2.0, 3.0]}, masked=True)
    table["psfNdata"] = np.ma.masked_array([4, 5, 6], mask=[False, True, False])
    info = ExposureInfo(2001, 3, "r", 60959.1, 30.0)
    assert diasource_catalog_bytes(table, info, _wcs(), (96, 80)) == write_diasource_catalog(
        table, info, _wcs(), (96, 80))
