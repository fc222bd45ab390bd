"""Alert cutouts: correct local WCS, faithful pixels, off-image fill, metadata, small size."""

import dataclasses
import io
import math

import numpy as np
import pytest
from astropy.io import fits
from astropy.nddata import Cutout2D
from astropy.wcs import WCS

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.formats.exposure import info_to_header
from alertprod.imaging import cutouts
from alertprod.imaging.cutouts import cutout_fits, cutout_size_pix, cutouts_fits, read_cutout
from alertprod.imaging.psf import moffat_psf, psf_fwhm_pix


def _reference_cutout_fits(exposure, ra_deg, dec_deg, *, size_pix=None, include_variance=True,
                           include_mask=True, include_psf=True):
    """The previous implementation (astropy Cutout2D and HDU writer), kept as the reference."""
    ra, dec = float(ra_deg), float(dec_deg)
    if size_pix is None:
        size_pix = cutout_size_pix(psf_fwhm_pix(exposure.psf))
    size = int(size_pix)
    x, y = exposure.wcs.all_world2pix(ra, dec, 0)
    ix, iy = int(math.floor(float(x) + 0.5)), int(math.floor(float(y) + 0.5))
    h = size // 2

    def cut(data, fill):
        return Cutout2D(data, (ix, iy), (size, size), wcs=exposure.wcs, mode="partial",
                        fill_value=fill, copy=True)

    image = cut(np.asarray(exposure.image, dtype=np.float32), np.nan)
    whdr = image.wcs.to_header(relax=True)
    primary = info_to_header(exposure.info)
    primary["CUTRA"] = (ra, "[deg] requested position, ICRS")
    primary["CUTDEC"] = (dec, "[deg] requested position, ICRS")
    primary["LTV1"] = (float(h - ix), "[pix] offset from parent x")
    primary["LTV2"] = (float(h - iy), "[pix] offset from parent y")
    hdus = [fits.ImageHDU(image.data.astype(np.float32), header=whdr, name="IMAGE")]
    if include_variance:
        var = cut(np.asarray(exposure.variance, dtype=np.float32), np.nan)
        hdus.append(fits.ImageHDU(var.data.astype(np.float32), header=whdr, name="VARIANCE"))
    if include_mask:
        mask = cut(np.asarray(exposure.mask, dtype=np.int32), int(MaskBit.NO_DATA)).data
        small = mask.size == 0 or (mask.min() >= 0 and mask.max() < 2**15)
        hdus.append(fits.ImageHDU(mask.astype(np.int16 if small else np.int32), header=whdr,
                                  name="MASK"))
    if include_psf:
        hdus.append(fits.ImageHDU(np.asarray(exposure.psf, dtype=np.float32), name="PSF"))
    buf = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(header=primary), *hdus]).writeto(buf)
    return buf.getvalue()


def _assert_same_hdus(new: bytes, old: bytes):
    """Same HDUs, header cards (values and text), data and dtypes; then the same bytes."""
    with fits.open(io.BytesIO(new)) as a, fits.open(io.BytesIO(old)) as b:
        assert [h.name for h in a] == [h.name for h in b]
        for ha, hb in zip(a, b, strict=True):
            assert list(ha.header.items()) == list(hb.header.items())
            if hb.data is None:
                assert ha.data is None
            else:
                assert ha.data.dtype == hb.data.dtype
                np.testing.assert_array_equal(ha.data, hb.data)
    assert new == old


@pytest.fixture(scope="module")
def exposure():
    rng = np.random.default_rng(7)
    ny, nx = 120, 160
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN-SIP", "DEC--TAN-SIP"]
    wcs.wcs.crval = [53.1, -27.8]
    wcs.wcs.crpix = [80.5, 60.5]
    wcs.wcs.cd = [[-0.2 / 3600, 0.01 / 3600], [0.01 / 3600, 0.2 / 3600]]
    a = np.zeros((3, 3))
    b = np.zeros((3, 3))
    a[2, 0], b[0, 2] = 2e-6, -1e-6
    from astropy.wcs import Sip
    wcs.sip = Sip(a, b, None, None, wcs.wcs.crpix)
    mask = np.zeros((ny, nx), dtype=np.int32)
    mask[10, 12] = MaskBit.SAT | MaskBit.DETECTED
    return Exposure(rng.normal(size=(ny, nx)).astype(np.float32),
                    rng.uniform(1, 2, (ny, nx)).astype(np.float32), mask, moffat_psf(3.5, size_pix=21),
                    wcs, ExposureInfo(1234, 42, "r", 60500.25, 30.0))


def test_sky_positions_map_to_the_same_pixel_in_cutout_and_parent(exposure):
    ra0, dec0 = exposure.wcs.all_pix2world(40.3, 70.8, 0)
    cut = read_cutout(cutout_fits(exposure, ra0, dec0, size_pix=31))
    off_x, off_y = 40 - 15, 71 - 15  # parent pixel of the cutout's (0, 0)
    rng = np.random.default_rng(1)
    px, py = rng.uniform(26, 54, 20), rng.uniform(57, 85, 20)
    ra, dec = exposure.wcs.all_pix2world(px, py, 0)
    cx, cy = cut.wcs.all_world2pix(ra, dec, 0)
    np.testing.assert_allclose(cx + off_x, px, atol=1e-6)
    np.testing.assert_allclose(cy + off_y, py, atol=1e-6)
    assert (cut.header["LTV1"], cut.header["LTV2"]) == (-off_x, -off_y)


def test_cutout_planes_equal_the_parent_pixels(exposure):
    ra, dec = exposure.wcs.all_pix2world(12.0, 10.0, 0)
    cut = read_cutout(cutout_fits(exposure, ra, dec, size_pix=15))
    np.testing.assert_array_equal(cut.image, exposure.image[3:18, 5:20])
    np.testing.assert_array_equal(cut.variance, exposure.variance[3:18, 5:20])
    np.testing.assert_array_equal(cut.mask, exposure.mask[3:18, 5:20])
    assert cut.mask[7, 7] == MaskBit.SAT | MaskBit.DETECTED
    np.testing.assert_allclose(cut.psf, exposure.psf, rtol=1e-6)
    assert cut.info == exposure.info


def test_off_image_part_is_nan_and_no_data(exposure):
    ra, dec = exposure.wcs.all_pix2world(2.0, 118.0, 0)
    cut = read_cutout(cutout_fits(exposure, ra, dec, size_pix=11))
    assert cut.image.shape == (11, 11)
    # columns x < 0 (the first 3) and rows y > 119 (the last 4) are off the parent
    off = np.zeros((11, 11), dtype=bool)
    off[:, :3] = True
    off[-4:, :] = True
    assert np.all(np.isnan(cut.image[off])) and np.all(np.isfinite(cut.image[~off]))
    assert np.all(np.isnan(cut.variance[off]))
    assert np.all(cut.mask[off] == MaskBit.NO_DATA) and not np.any(cut.mask[~off] & MaskBit.NO_DATA)
    np.testing.assert_array_equal(cut.image[:-4, 3:], exposure.image[113:, 0:8])


def test_default_cutout_is_small_and_readable_with_plain_astropy(exposure):
    ra, dec = exposure.wcs.all_pix2world(80.0, 60.0, 0)
    blob = cutout_fits(exposure, ra, dec)
    assert len(blob) <= 32 * 1024
    with fits.open(io.BytesIO(blob)) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE", "VARIANCE", "MASK", "PSF"]
        hdr = hdul[0].header
        assert (hdr["VISIT"], hdr["DETECTOR"], hdr["BAND"], hdr["MJD-MID"], hdr["EXPTIME"]) == (
            1234, 42, "r", 60500.25, 30.0)
        assert hdul["IMAGE"].data.shape == (31, 31) and hdul["IMAGE"].data.dtype.itemsize == 4
        assert hdul["MASK"].data.dtype.itemsize == 2
        assert WCS(hdul["IMAGE"].header).has_celestial
    only_image = cutout_fits(exposure, ra, dec, include_variance=False, include_mask=False,
                             include_psf=False)
    with fits.open(io.BytesIO(only_image)) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "IMAGE"]
    assert len(only_image) < len(blob) / 2


def test_cutout_size_follows_psf_and_trail_and_stays_odd():
    assert cutout_size_pix(3.5) == 31
    assert cutout_size_pix(5.0) == 41
    assert cutout_size_pix(5.0, trail_length_pix=20) == 61
    assert cutout_size_pix(50.0) == 101
    assert all(cutout_size_pix(f) % 2 == 1 for f in np.linspace(0.5, 20, 40))
    with pytest.raises(ImageError):
        cutout_size_pix(-1.0)
    with pytest.raises(ImageError):
        cutout_size_pix(3.0, min_size_pix=30)


def test_cutout_far_off_the_image_or_of_even_size_is_refused(exposure):
    ra, dec = exposure.wcs.all_pix2world(-500.0, 60.0, 0)
    with pytest.raises(ImageError, match="off the image"):
        cutout_fits(exposure, ra, dec, size_pix=31)
    ra, dec = exposure.wcs.all_pix2world(50.0, 60.0, 0)
    with pytest.raises(ImageError, match="odd"):
        cutout_fits(exposure, ra, dec, size_pix=30)


def _positions(exposure, size):
    """Parent pixels inside, on every edge and corner, and partly off the image."""
    ny, nx = exposure.shape
    h = size // 2
    px = [80.2, 0.0, nx - 1.0, 40.0, 40.0, -h + 0.4, nx - 1 + h - 0.4, -3.0, nx + 2.0, 5.0, 17.6]
    py = [60.7, 50.0, 50.0, 0.0, ny - 1.0, -h + 0.4, ny - 1 + h - 0.4, ny + 1.0, -4.0, 3.0, 99.4]
    return exposure.wcs.all_pix2world(np.array(px), np.array(py), 0)


@pytest.mark.parametrize("size_pix", [None, 15])
def test_cutouts_equal_the_astropy_cutout2d_files_byte_for_byte(exposure, size_pix):
    ra, dec = _positions(exposure, size_pix or 31)
    blobs = cutouts_fits(exposure, ra, dec, size_pix=size_pix)
    assert len(blobs) == ra.size
    for blob, r, d in zip(blobs, ra, dec, strict=True):
        _assert_same_hdus(blob, _reference_cutout_fits(exposure, r, d, size_pix=size_pix))
    assert cutout_fits(exposure, ra[5], dec[5], size_pix=size_pix) == blobs[5]


@pytest.mark.parametrize("planes", [(False, False, False), (True, False, True),
                                    (False, True, False)])
def test_cutouts_without_some_planes_equal_the_reference(exposure, planes):
    var, mask, psf = planes
    ra, dec = _positions(exposure, 11)
    flags = dict(include_variance=var, include_mask=mask, include_psf=psf)
    blobs = cutouts_fits(exposure, ra, dec, size_pix=11, **flags)
    for blob, r, d in zip(blobs, ra, dec, strict=True):
        _assert_same_hdus(blob, _reference_cutout_fits(exposure, r, d, size_pix=11, **flags))


def test_wide_mask_bits_and_float64_planes_and_many_digit_crpix_match_the_reference(exposure):
    """int32 MASK where bits exceed int16, float64 parents cast to float32, CRPIX of 16 digits."""
    wcs = exposure.wcs.deepcopy()
    wcs.wcs.crpix = [80.123456789012345, 60.98765432101234]
    wcs.sip = type(wcs.sip)(wcs.sip.a, wcs.sip.b, None, None, wcs.wcs.crpix)
    mask = exposure.mask.copy()
    mask[50, 60] = 1 << 20
    exp = dataclasses.replace(exposure, image=exposure.image.astype(np.float64) / 3,
                              variance=exposure.variance.astype(np.float64), mask=mask, wcs=wcs)
    ra, dec = exp.wcs.all_pix2world(np.array([60.0, 2.0, 150.0]), np.array([50.0, 3.0, 110.0]), 0)
    blobs = cutouts_fits(exp, ra, dec, size_pix=21)
    with fits.open(io.BytesIO(blobs[0])) as hdul:
        assert hdul["MASK"].data.dtype.itemsize == 4
    with fits.open(io.BytesIO(blobs[2])) as hdul:
        assert hdul["MASK"].data.dtype.itemsize == 2
    for blob, r, d in zip(blobs, ra, dec, strict=True):
        _assert_same_hdus(blob, _reference_cutout_fits(exp, r, d, size_pix=21))


def test_crpix_written_by_a_differently_formatting_wcslib_still_matches(exposure, monkeypatch):
    """If WCSLIB's CRPIX text ever differs from ours, the cards come from a WCS copy instead."""
    monkeypatch.setattr(cutouts, "_wcslib_value", lambda value: f"{value:20.10E}")
    ra, dec = _positions(exposure, 15)
    blobs = cutouts_fits(exposure, ra[:4], dec[:4], size_pix=15)
    for blob, r, d in zip(blobs, ra[:4], dec[:4], strict=True):
        _assert_same_hdus(blob, _reference_cutout_fits(exposure, r, d, size_pix=15))


def test_many_cutouts_map_sky_positions_to_the_same_parent_pixel(exposure):
    rng = np.random.default_rng(3)
    px, py = rng.uniform(-5, 165, 30), rng.uniform(-5, 125, 30)
    ra, dec = exposure.wcs.all_pix2world(px, py, 0)
    for blob, x, y in zip(cutouts_fits(exposure, ra, dec, size_pix=21), px, py, strict=True):
        cut = read_cutout(blob)
        off_x, off_y = -cut.header["LTV1"], -cut.header["LTV2"]
        assert (off_x, off_y) == (np.floor(x + 0.5) - 10, np.floor(y + 0.5) - 10)
        cx, cy = cut.wcs.all_world2pix(ra, dec, 0)
        np.testing.assert_allclose(cx + off_x, px, atol=1e-6)
        np.testing.assert_allclose(cy + off_y, py, atol=1e-6)


def test_cutouts_refuse_bad_positions_naming_the_first(exposure):
    ra, dec = exposure.wcs.all_pix2world(np.array([50.0, 60.0]), np.array([50.0, 60.0]), 0)
    assert cutouts_fits(exposure, ra[:0], dec[:0]) == []
    with pytest.raises(ImageError, match="1-D of one length"):
        cutouts_fits(exposure, ra, dec[:1])
    with pytest.raises(ImageError, match=r"ra_deg\[1\]"):
        cutouts_fits(exposure, ra, np.array([dec[0], np.nan]))
    far_ra, far_dec = exposure.wcs.all_pix2world(np.array([50.0, -500.0]),
                                                 np.array([50.0, 60.0]), 0)
    with pytest.raises(ImageError, match=r"position 1\) lies wholly off the image"):
        cutouts_fits(exposure, far_ra, far_dec, size_pix=31)
