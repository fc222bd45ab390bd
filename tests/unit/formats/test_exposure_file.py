"""Exposure files read by byte ranges: the same measurements as the whole file, far fewer bytes."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic import make_wcs

from alertprod.errors import ContractError
from alertprod.formats import (
    BytesSource,
    Exposure,
    ExposureFile,
    ExposureInfo,
    MaskBit,
    ReadCost,
    read_exposure,
    windows_around,
    write_exposure,
)
from alertprod.formats.compression import CompressionSpec, compress_exposure
from alertprod.imaging.psf import add_point_sources, moffat_psf
from alertprod.photometry.dia_forced import VisitImages, dia_forced_rows
from alertprod.photometry.forced import forced_photometry_exposure
from alertprod.photometry.stamps import dia_forced_half_size_pix, forced_half_size_pix, sky_windows

NY, NX = 4096, 512  # tall and narrow: a 21-row stamp is 0.5 % of the rows, the file is 25 MB
SIGMA = 30.0
SPEC = CompressionSpec(tile_shape_pix=(64, 64), quantize_level=16.0)


def _exposure(seed: int = 3, n_stars: int = 60) -> tuple[Exposure, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    psf = moffat_psf(3.5, size_pix=21)
    image = rng.standard_normal((NY, NX), dtype=np.float32) * np.float32(SIGMA)
    x, y = rng.uniform(20, NX - 20, n_stars), rng.uniform(20, NY - 20, n_stars)
    add_point_sources(image, psf, x, y, rng.uniform(2e3, 1e5, n_stars))
    mask = np.where(rng.random((NY, NX)) < 0.002, int(MaskBit.CR), 0).astype(np.int32)
    mask[:, :3] |= int(MaskBit.EDGE)
    wcs = make_wcs(nx=NX, ny=NY)
    exp = Exposure(image, np.full((NY, NX), SIGMA**2, np.float32), mask, psf, wcs,
                   ExposureInfo(7, 3, "r", 60000.1, 30.0))
    # objects: near the stars, 0.3 px off (refinement moves them), and blank sky
    ox = np.concatenate([x + 0.3, rng.uniform(0, NX, 20)])
    oy = np.concatenate([y - 0.2, rng.uniform(0, NY, 20)])
    ra, dec = wcs.all_pix2world(ox, oy, 0)
    return exp, np.asarray(ra), np.asarray(dec)


@pytest.fixture(scope="module")
def scene():
    exp, ra, dec = _exposure()
    return exp, write_exposure(exp), compress_exposure(exp, SPEC), ra, dec


def _windowed(raw: bytes, ra, dec, kind: str, **kw) -> tuple[Exposure, ExposureFile]:
    f = ExposureFile.open(BytesSource(raw, what=kind))
    half = dia_forced_half_size_pix(kind, f.psf)
    return f.read_windows(sky_windows(f.wcs, f.shape, ra, dec, half), **kw), f


@pytest.mark.parametrize("whole", [False, True])
def test_forced_rows_through_ranged_reads_equal_the_whole_file_bit_for_bit(scene, whole):
    _, raw, _, ra, dec = scene
    ids = np.arange(1, ra.size + 1, dtype=np.int64)
    full = read_exposure(raw)
    diff, _ = _windowed(raw, ra, dec, "difference", whole=whole)
    sci, _ = _windowed(raw, ra, dec, "science", whole=whole)
    expect = dia_forced_rows(ids, ra, dec, VisitImages(7, 3, "r", 60000.1, full, full),
                             processed_mjd_tai=60001.0, is_precovery=True)
    got = dia_forced_rows(ids, ra, dec, VisitImages(7, 3, "r", 60000.1, diff, sci),
                          processed_mjd_tai=60001.0, is_precovery=True)
    assert len(got) == len(expect) == ra.size
    for col in expect.colnames:
        a, b = np.asarray(got[col]), np.asarray(expect[col])
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), col
    assert not np.array_equal(got["ra"], ra)  # refinement moved the star positions: the wide
    # windows were needed, and they were read


@pytest.mark.parametrize("packed", [False, True])
def test_windows_at_the_corners_hold_the_file_pixels(scene, packed):
    # the first rows of a plane share their bytes with the header chunk read at opening
    _, raw, comp, _, _ = scene
    data = comp if packed else raw
    f = ExposureFile.open(data)
    w = windows_around([0.2, NX - 1.0, 3.0, NX - 2.0], [0.3, 0.0, NY - 1.0, NY - 4.0], 10, f.shape)
    got = f.read_windows(w, whole=False)
    full = read_exposure(data)
    inside = np.isfinite(got.image)
    assert inside.sum() == np.sum((w[:, 1] - w[:, 0]) * (w[:, 3] - w[:, 2])) == 564  # clipped
    for plane in ("image", "variance", "mask"):
        assert np.array_equal(getattr(got, plane)[inside], getattr(full, plane)[inside]), plane


def test_pixels_outside_the_windows_are_nan_and_no_data(scene):
    _, raw, _, ra, dec = scene
    exp, f = _windowed(raw, ra[:1], dec[:1], "difference")
    inside = np.isfinite(exp.image)
    k = f.psf.shape[0]
    assert inside.sum() == k * k
    assert np.all(np.isnan(exp.variance[~inside]))
    assert np.all(exp.mask[~inside] == int(MaskBit.NO_DATA))
    full = read_exposure(raw)
    assert np.array_equal(exp.image[inside], full.image[inside])
    assert np.array_equal(exp.mask[inside], full.mask[inside])


def test_one_stamp_reads_one_get_per_plane_and_under_one_percent_of_the_file(scene):
    _, raw, _, ra, dec = scene
    source = BytesSource(raw)
    f = ExposureFile.open(source)
    opened = source.stats.snapshot()
    assert opened["gets"] <= 6 and opened["bytes"] < 0.005 * len(raw)  # headers and the PSF
    f.read_windows(sky_windows(f.wcs, f.shape, ra[:1], dec[:1], forced_half_size_pix(f.psf)))
    total = source.stats.snapshot()
    assert total["gets"] - opened["gets"] == 3  # IMAGE, VARIANCE, MASK: one row band each
    assert total["bytes"] < 0.01 * len(raw)


def test_read_all_equals_read_exposure(scene):
    exp, raw, packed, _, _ = scene
    for data in (raw, packed):
        a, b = ExposureFile.open(data).read_all(), read_exposure(data)
        for plane in ("image", "variance", "mask", "psf"):
            assert np.array_equal(getattr(a, plane), getattr(b, plane)), plane
        assert a.info == b.info and a.header == b.header


def test_many_windows_are_read_as_a_few_large_ranges_of_the_whole_file(scene):
    _, raw, _, _, _ = scene
    f = ExposureFile.open(raw)
    rng = np.random.default_rng(5)
    one = f.plan(windows_around([100.0], [2000.0], 10, f.shape))
    many = f.plan(windows_around(rng.uniform(0, NX, 3000), rng.uniform(0, NY, 3000), 10, f.shape))
    assert not one.whole and one.windowed_usd < one.whole_usd and len(one.ranges) == 3
    # 3,000 stamps cover every row band: gaps are read through, and the reads are the file in
    # a few equal parallel ranges, whichever way is named
    parallelism = ReadCost().parallelism
    assert many.bytes >= 0.99 * len(raw) and len(many.ranges) <= parallelism + 1
    cheaper = "whole" if many.whole_usd < many.windowed_usd else "windowed"
    assert ("whole" if many.whole else "windowed") == cheaper
    forced = f.plan(windows_around([100.0], [2000.0], 10, f.shape), whole=True)
    assert forced.whole and len(forced.ranges) == parallelism and forced.bytes == len(raw)


def test_compressed_file_reads_only_touched_tiles_and_round_trips_the_mask(scene):
    exp, raw, packed, ra, dec = scene
    source = BytesSource(packed)
    # GETs that wait 1 ms for their first byte: gaps above 90 kB are not read through
    f = ExposureFile.open(source, cost=ReadCost(first_byte_s=0.001))
    assert f.compressed and f.cost.coalesce_gap_bytes == 90_000
    opened = source.stats.bytes
    windows = sky_windows(f.wcs, f.shape, ra[:2], dec[:2], forced_half_size_pix(f.psf))
    got = f.read_windows(windows, whole=False)
    assert source.stats.bytes - opened < 0.1 * len(packed)
    inside = np.isfinite(got.image)
    assert np.array_equal(got.mask[inside], exp.mask[inside])  # lossless
    whole = read_exposure(packed)
    assert np.array_equal(whole.mask, exp.mask)
    assert np.array_equal(got.image[inside], whole.image[inside])  # same tiles, same numbers
    assert np.array_equal(got.variance[inside], whole.variance[inside])


def test_compressed_forced_flux_is_within_the_quantisation_error(scene):
    exp, _, packed, ra, dec = scene
    windowed, _ = _windowed(packed, ra, dec, "difference")
    a = forced_photometry_exposure(exp, ra, dec)
    b = forced_photometry_exposure(windowed, ra, dec)
    # quantised to σ/q: added noise σ/(q√12) per pixel, so ~0.018 σ_F at q = 16
    pull = (b.flux - a.flux) / a.flux_err
    assert np.all(np.abs(pull) < 5 / (SPEC.quantize_level * np.sqrt(12)))
    assert np.std(pull) > 0  # the quantisation is seen, the test can fail


def test_truncated_file_is_a_contract_error(scene):
    _, raw, packed, _, _ = scene
    for data in (raw[:len(raw) // 2], packed[:len(packed) - 5000]):
        with pytest.raises(ContractError) as err:
            ExposureFile.open(data, what="difference")
        assert err.value.reason == "truncated_file" and "truncated" in str(err.value)


def test_missing_plane_is_a_contract_error():
    from astropy.io import fits

    exp, _, _ = _exposure(n_stars=1)
    small = Exposure(exp.image[:64, :64], exp.variance[:64, :64], exp.mask[:64, :64], exp.psf,
                     exp.wcs, exp.info)
    with fits.open(__import__("io").BytesIO(write_exposure(small))) as hdul:
        del hdul["VARIANCE"]
        buf = __import__("io").BytesIO()
        hdul.writeto(buf)
    with pytest.raises(ContractError) as err:
        ExposureFile.open(buf.getvalue(), what="science")
    assert err.value.reason == "missing_extension" and "VARIANCE" in str(err.value)


def test_negative_variance_is_flagged_bad_where_read_and_reported():
    exp, _, _ = _exposure(n_stars=1)
    small = Exposure(exp.image[:64, :64], exp.variance[:64, :64].copy(), exp.mask[:64, :64],
                     exp.psf, exp.wcs, exp.info)
    small.variance[10:20, 10:20] = -1.0
    heard = []
    efile = ExposureFile.open(write_exposure(small), what="difference")
    efile.on_warning = lambda code, n: heard.append((code, n))
    got = efile.read_windows(np.array([[0, 15, 0, 15]]))
    flagged = (got.mask & int(MaskBit.BAD)) != 0
    assert flagged[10:15, 10:15].all() and flagged.sum() == 25
    assert heard == [("negative_variance", 25)] and efile.negative_variance_pixels == 25
    assert got.variance[12, 12] == -1.0  # the pixels are the file's; the mask says unusable
