"""Option F: differences re-created against a deeper data-release coadd agree with truth, with
smaller errors than against a shallow nightly template; the option is refused where no coadd is."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.archive import archive_key
from alertprod.archive.data_release import load_data_release, read_data_release_index
from alertprod.aws import MemoryBlobStore
from alertprod.formats import Exposure, ExposureInfo, write_exposure
from alertprod.formats.compression import compress_exposure
from alertprod.imaging.psf import add_point_sources, gaussian_psf
from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.precovery.jobs import parse_options
from alertprod.precovery.targets import TargetError, parse_target

pytestmark = pytest.mark.unit

N, SIGMA = 256, 20.0
NIGHTLY_SIGMA = SIGMA / 1.5  # an early template of a couple of visits
DR_SIGMA = SIGMA / 6.0  # the release's deep coadd
VISITS = (101, 102, 103)


def _patch_wcs():
    """The coadd's own grid: 420 px, rotated 20° and offset from the CCD."""
    wcs = make_wcs(150.002, 1.999, nx=420, ny=420)
    a = np.deg2rad(20.0)
    wcs.wcs.cd = wcs.wcs.cd @ np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    return wcs


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    """Three visits of one CCD: 36 transients on a star field; nightly templates, one DR coadd."""
    rng = np.random.default_rng(11)
    wcs = make_wcs(nx=N, ny=N)
    psf_s, psf_t = gaussian_psf(4.0, size_pix=21), gaussian_psf(3.2, size_pix=21)
    star_xy = rng.uniform(20, N - 20, (2, 30))
    star_ra, star_dec = wcs.all_pix2world(star_xy[0], star_xy[1], 0)
    star_flux = rng.uniform(2e3, 3e4, 30)
    grid = np.linspace(25, N - 25, 6)
    tx, ty = (g.ravel() + rng.uniform(-0.5, 0.5, 36) for g in np.meshgrid(grid, grid))
    t_ra, t_dec = wcs.all_pix2world(tx, ty, 0)
    archive = MemoryBlobStore()
    truth = {}
    for visit in VISITS:
        info = ExposureInfo(visit, 4, "g", 60400.0 + visit, 30.0)
        flux = rng.uniform(300.0, 3000.0, 36)
        truth[visit] = flux
        static = np.zeros((N, N))
        add_point_sources(static, psf_s, star_xy[0], star_xy[1], star_flux)
        sci = static.copy()
        add_point_sources(sci, psf_s, tx, ty, flux)
        tmpl = np.zeros((N, N))
        add_point_sources(tmpl, psf_t, star_xy[0], star_xy[1], star_flux)
        zeros = np.zeros((N, N), np.int32)
        science = Exposure((sci + rng.normal(0, SIGMA, (N, N))).astype(np.float32),
                           np.full((N, N), SIGMA**2, np.float32), zeros, psf_s, wcs, info)
        template = Exposure((tmpl + rng.normal(0, NIGHTLY_SIGMA, (N, N))).astype(np.float32),
                            np.full((N, N), NIGHTLY_SIGMA**2, np.float32), zeros, psf_t, wcs, info)
        archive.put(archive_key(visit, 4, "science"), compress_exposure(science))
        archive.put(archive_key(visit, 4, "template"), compress_exposure(template))
    pwcs, n = _patch_wcs(), 420
    coadd = np.zeros((n, n))
    px, py = pwcs.all_world2pix(star_ra, star_dec, 0)
    add_point_sources(coadd, psf_t, px, py, star_flux)
    dr = Exposure((coadd + rng.normal(0, DR_SIGMA, (n, n))).astype(np.float32),
                  np.full((n, n), DR_SIGMA**2, np.float32), np.zeros((n, n), np.int32), psf_t, pwcs,
                  ExposureInfo(0, 0, "g", 60000.0, 2400.0),
                  {"DRNAME": "DR1", "DRPATCH": "p0", "DRDEPTH": 72})
    directory = tmp_path_factory.mktemp("dr")
    (directory / "p0_g.fits").write_bytes(write_exposure(dr))
    load_data_release(directory, archive)
    return archive, np.asarray(t_ra), np.asarray(t_dec), truth


def _measure(scene, image_kind, source="archive"):
    archive, ra, dec, truth = scene
    pulls, errors, rows_all = [], [], []
    for visit in VISITS:
        unit = JobUnit(visit, 4, "g", 60400.0 + visit, source, tuple(range(36)), tuple(ra),
                       tuple(dec))
        rows = measure_job_unit(unit, images=MemoryBlobStore(), archive=archive,
                                processed_mjd_tai=61000.0, image_kind=image_kind).rows
        assert list(rows["target"]) == list(range(36))
        flux, err = np.asarray(rows["psfFlux"]), np.asarray(rows["psfFluxErr"])
        pulls.append((flux - truth[visit]) / err)
        errors.append(err)
        rows_all.append(rows)
    return np.concatenate(pulls), np.concatenate(errors), rows_all


def test_transients_measured_against_the_data_release_coadd_agree_with_truth(scene):
    pulls, _, rows = _measure(scene, "data_release")
    assert pulls.size == 108
    assert abs(pulls.mean()) < 0.3 and 0.8 < pulls.std() < 1.25, (pulls.mean(), pulls.std())
    for r in rows:
        assert set(r["template"]) == {"data_release:DR1/p0"} and bool(np.all(r["recreated"]))


def test_the_deeper_data_release_coadd_gives_smaller_errors_than_the_nightly_template(scene):
    dr_pulls, dr_err, _ = _measure(scene, "data_release")
    nightly_pulls, nightly_err, rows = _measure(scene, "nightly")
    assert abs(nightly_pulls.mean()) < 0.3 and 0.8 < nightly_pulls.std() < 1.25
    assert set(rows[0]["template"]) == {"archive:template"}
    # expected ratio: sqrt((1 + 1/36) / (1 + 1/2.25)) = 0.84
    assert np.median(dr_err) < 0.9 * np.median(nightly_err)
    assert np.median(dr_err) > 0.75 * np.median(nightly_err)


def test_a_cached_epoch_asked_for_data_release_is_re_created_against_the_coadd(scene):
    _, _, rows = _measure(scene, "data_release", source="cache")
    assert bool(np.all(rows[0]["recreated"])) and rows[0]["template"][0] == "data_release:DR1/p0"


def test_data_release_images_are_refused_where_no_coadd_covers_the_target(scene):
    archive = scene[0]
    index = read_data_release_index(archive)
    inside = parse_target({"kind": "position", "ra": 150.0, "dec": 2.0})
    options = parse_options({"images": "data_release", "stamps": True}, now_mjd_tai=61000.0,
                            target=inside, dr_index=index)
    assert (options.images, options.stamps) == ("data_release", True)
    with pytest.raises(TargetError, match="none are loaded"):
        parse_options({"images": "data_release"}, now_mjd_tai=61000.0, target=inside, dr_index=None)
    batch = parse_target({"kind": "batch", "positions": [{"ra": 150.0, "dec": 2.0},
                                                          {"ra": 20.0, "dec": -5.0}]})
    with pytest.raises(TargetError, match=r"covers 1 of the 2 position\(s\) \(index 1\)"):
        parse_options({"images": "data_release"}, now_mjd_tai=61000.0, target=batch, dr_index=index)
    star = parse_target({"kind": "proper_motion", "ra": 20.0, "dec": -5.0, "pmra": 100.0,
                         "pmdec": 0.0, "parallax": 5.0})
    with pytest.raises(TargetError, match="covers the path"):
        parse_options({"images": "data_release", "mjd_min": 60000.0}, now_mjd_tai=61000.0,
                      target=star, dr_index=index)
    near = parse_target({"kind": "proper_motion", "ra": 150.0, "dec": 2.0, "pmra": 100.0,
                         "pmdec": 0.0, "parallax": 5.0})
    parse_options({"images": "data_release", "mjd_min": 60000.0}, now_mjd_tai=61000.0,
                  target=near, dr_index=index)


def test_stamps_of_a_data_release_epoch_name_the_coadd_they_were_made_against(scene):
    import io

    from astropy.io import fits

    archive, ra, dec, _ = scene
    unit = JobUnit(101, 4, "g", 60501.0, "archive", (7, 14), (ra[7], ra[14]), (dec[7], dec[14]))
    out = measure_job_unit(unit, images=MemoryBlobStore(), archive=archive,
                           processed_mjd_tai=61000.0, image_kind="data_release", stamps=True)
    stamps = [s for s in out.stamps if s.name.endswith(".fits")]
    assert [s.name for s in stamps] == ["stamps/target00007/00000101_004.fits",
                                        "stamps/target00014/00000101_004.fits"]
    for stamp in stamps:
        with fits.open(io.BytesIO(stamp.data)) as hdul:
            assert hdul[0].header["TEMPLATE"] == "data_release:DR1/p0"
            assert hdul[0].header["RECREATE"] is True
            assert np.all(np.isfinite(hdul["DIFF"].data))  # inside the CCD: re-created throughout


def test_an_asteroid_asking_for_data_release_is_checked_on_its_planned_images(scene):
    """An orbit target's path is not integrated at submission; its planned images are checked."""
    from alertprod.precovery.jobs import check_data_release_units

    index = read_data_release_index(scene[0])
    ceres = parse_target({"kind": "orbit", "mpcorb": (
        "00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
        "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
        "4000      (1) Ceres              20260103")})
    parse_options({"images": "data_release"}, now_mjd_tai=61000.0, target=ceres, dr_index=index)
    on = JobUnit(1, 4, "g", 60500.0, "archive", (0,), (150.0,), (2.0,))
    off = JobUnit(2, 4, "g", 60501.0, "archive", (0,), (20.0,), (-5.0,))
    other_band = JobUnit(3, 4, "r", 60502.0, "archive", (0,), (150.0,), (2.0,))
    check_data_release_units([off, on], index)
    with pytest.raises(TargetError, match="covers any of the 2 image"):
        check_data_release_units([off, other_band], index)
    with pytest.raises(TargetError, match="none are loaded"):
        check_data_release_units([on], None)
