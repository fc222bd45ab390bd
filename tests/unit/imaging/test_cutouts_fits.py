"""Alert cutouts: correct local WCS, faithful pixels, off-image fill, metadata, small size."""

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from alertprod.errors import ImageError
from alertprod.formats import Exposure, ExposureInfo, MaskBit
from alertprod.imaging.cutouts import cutout_fits, cutout_size_pix, read_cutout
from alertprod.imaging.psf import moffat_psf


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
