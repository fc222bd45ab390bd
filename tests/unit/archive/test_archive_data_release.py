"""Data-release templates in the archive: checked on load, indexed, idempotent, found by position."""

from __future__ import annotations

import json

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.archive.data_release import (
    DR_INDEX_KEY,
    dr_template_key,
    load_data_release,
    read_data_release_index,
    template_on_science_grid,
)
from alertprod.aws import MemoryBlobStore
from alertprod.errors import ContractError
from alertprod.formats import Exposure, ExposureInfo, write_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf

pytestmark = pytest.mark.unit


def coadd(patch: str, band: str, ra0: float, dec0: float, *, n: int = 200, release: str = "DR1",
          rot_deg: float = 0.0, extra: dict | None = None, stars=None) -> bytes:
    """A noiseless coadd in the exposure format with the data-release cards."""
    wcs = make_wcs(ra0, dec0, nx=n, ny=n)
    c, s = np.cos(np.deg2rad(rot_deg)), np.sin(np.deg2rad(rot_deg))
    wcs.wcs.cd = wcs.wcs.cd @ np.array([[c, -s], [s, c]])
    psf = gaussian_psf(3.0, size_pix=15)
    image = np.zeros((n, n))
    if stars is not None:
        x, y = wcs.all_world2pix(stars[0], stars[1], 0)
        add_point_sources(image, psf, x, y, stars[2])
    header = {"DRNAME": release, "DRPATCH": patch, "DRDEPTH": 80, **(extra or {})}
    exp = Exposure(image.astype(np.float32), np.ones((n, n), np.float32), np.zeros((n, n), np.int32),
                   psf, wcs, ExposureInfo(0, 0, band, 60000.0, 2400.0), header)
    return write_exposure(exp)


def test_loading_writes_each_coadd_then_the_index_and_a_rerun_writes_nothing(tmp_path):
    for patch, ra0 in (("p000", 150.0), ("p001", 150.04)):
        for band in "gr":
            (tmp_path / f"{patch}_{band}.fits").write_bytes(coadd(patch, band, ra0, 2.0))
    archive = MemoryBlobStore()
    report = load_data_release(tmp_path, archive)
    assert report == {"release": "DR1", "templates": 4, "written": 4, "unchanged": 0,
                      "bands": ["g", "r"], "patches": 2}
    assert archive.exists(dr_template_key("DR1", "g", "p001"))
    index_bytes = archive.get(DR_INDEX_KEY)
    assert json.loads(index_bytes)["release"] == "DR1"
    again = load_data_release(tmp_path, archive)
    assert (again["written"], again["unchanged"]) == (0, 4)
    assert archive.get(DR_INDEX_KEY) == index_bytes  # the same coadds, the same index


def test_the_coadd_whose_centre_is_nearest_is_chosen_where_patches_overlap(tmp_path):
    # 200 px of 0.2″ = 40″ per patch; centres 30″ apart overlap by 10″
    step = 30.0 / 3600.0
    for k in range(2):
        (tmp_path / f"p{k}_r.fits").write_bytes(coadd(f"p{k}", "r", 150.0 + k * step, 2.0))
    archive = MemoryBlobStore()
    load_data_release(tmp_path, archive)
    index = read_data_release_index(archive)
    assert index.covering(150.0 + 0.4 * step, 2.0, "r").patch == "p0"
    assert index.covering(150.0 + 0.6 * step, 2.0, "r").patch == "p1"
    assert index.covering(150.0 + 0.6 * step, 2.0, "g") is None  # no g coadd
    assert index.covering(151.0, 2.0) is None


@pytest.mark.parametrize("make, reason", [
    (lambda: b"not a FITS file", "not_fits"),
    (lambda: coadd("p0", "r", 150.0, 2.0, extra={"DRDEPTH": 0}), "DRDEPTH"),
    (lambda: coadd("bad/name", "r", 150.0, 2.0), "patch name"),
])
def test_a_bad_coadd_is_refused_by_name_and_nothing_is_written(tmp_path, make, reason):
    (tmp_path / "a_good_one.fits").write_bytes(coadd("p9", "g", 150.0, 2.0))
    (tmp_path / "b_bad.fits").write_bytes(make())
    archive = MemoryBlobStore()
    with pytest.raises(ContractError, match=reason) as err:
        load_data_release(tmp_path, archive)
    assert "b_bad.fits" in str(err.value) or reason in str(err.value)
    assert list(archive.list("")) == []


def test_two_releases_or_one_patch_twice_in_a_load_are_refused(tmp_path):
    (tmp_path / "a.fits").write_bytes(coadd("p0", "r", 150.0, 2.0))
    (tmp_path / "b.fits").write_bytes(coadd("p0", "r", 150.0, 2.0))
    with pytest.raises(ContractError, match="twice"):
        load_data_release(tmp_path, MemoryBlobStore())
    (tmp_path / "b.fits").write_bytes(coadd("p1", "r", 150.0, 2.0, release="DR2"))
    with pytest.raises(ContractError, match="one release per load"):
        load_data_release(tmp_path, MemoryBlobStore())
    with pytest.raises(ContractError, match="no data-release coadds"):
        load_data_release(tmp_path / "missing", MemoryBlobStore())


def test_a_coadd_resampled_onto_a_rotated_ccd_puts_its_stars_where_the_ccd_sees_them(tmp_path):
    rng = np.random.default_rng(3)
    grid = np.array([-1.0, 0.0, 1.0]) * 8.0 / 3600.0  # 40 px apart: isolated stars
    ra, dec = (g.ravel() for g in np.meshgrid(150.001 + grid + rng.uniform(-1e-4, 1e-4, 3),
                                               2.0 + grid))
    flux = rng.uniform(5e3, 2e4, ra.size)
    (tmp_path / "p0_r.fits").write_bytes(coadd("p0", "r", 150.0, 2.0, n=300, rot_deg=35.0,
                                               stars=(ra, dec, flux)))
    archive = MemoryBlobStore()
    load_data_release(tmp_path, archive)
    entry = read_data_release_index(archive).covering(150.0, 2.0, "r")
    sci_wcs = make_wcs(150.001, 2.0, nx=128, ny=128)
    science = Exposure(np.zeros((128, 128), np.float32), np.ones((128, 128), np.float32),
                       np.zeros((128, 128), np.int32), gaussian_psf(3.0, size_pix=15), sci_wcs,
                       ExposureInfo(5, 1, "r", 60500.0, 30.0))
    out = template_on_science_grid(archive, entry, science, [(0, 128, 0, 128)])
    assert out.header == {"DRNAME": "DR1", "DRPATCH": "p0"} and out.shape == (128, 128)
    x, y = sci_wcs.all_world2pix(ra, dec, 0)
    inside = (x > 10) & (x < 117) & (y > 10) & (y < 117)
    assert inside.sum() == 9
    for xi, yi, f in zip(x[inside], y[inside], flux[inside], strict=True):
        ix, iy = int(round(xi)), int(round(yi))
        box = out.image[iy - 7:iy + 8, ix - 7:ix + 8]
        assert box.sum() == pytest.approx(f, rel=0.03)  # the flux is kept, at the right place
        peak = np.unravel_index(np.argmax(box), box.shape)
        assert abs(peak[0] - 7) <= 1 and abs(peak[1] - 7) <= 1
