"""Exposure and catalog files round-trip through the contract's FITS layout."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.errors import ContractError
from alertprod.formats import (
    Exposure,
    ExposureInfo,
    MaskBit,
    diasource_key,
    image_key,
    parse_key,
    read_exposure,
    write_exposure,
)


def test_keys_round_trip():
    assert diasource_key(12, 3) == "diasources/00000012/003.fits"
    assert parse_key(image_key(12, 3, "difference")) == ("difference", 12, 3)
    assert parse_key("config/mpcorb/MPCORB.DAT").kind == "mpcorb"
    with pytest.raises(ContractError):
        parse_key("diasources/12/3.fits")


def test_exposure_round_trip_keeps_pixels_wcs_and_metadata():
    from synthetic import make_wcs
    rng = np.random.default_rng(0)
    img = rng.normal(size=(32, 48)).astype(np.float32)
    psf = np.zeros((7, 7))
    psf[3, 3] = 1
    mask = np.zeros((32, 48), np.int32)
    mask[5, 5] = MaskBit.SAT | MaskBit.CR
    info = ExposureInfo(5, 7, "g", 60123.25, 30.0, -70.0, -30.0, 2600.0)
    exp = Exposure(img, img**2, mask, psf, make_wcs(nx=48, ny=32), info)
    back = read_exposure(write_exposure(exp))
    assert back.info == info
    np.testing.assert_array_equal(back.image, img)
    np.testing.assert_array_equal(back.mask, mask)
    assert np.allclose(back.wcs.all_pix2world([[10, 10]], 0), exp.wcs.all_pix2world([[10, 10]], 0))


def test_even_sized_psf_is_refused():
    from synthetic import make_wcs
    img = np.zeros((8, 8), np.float32)
    exp = Exposure(img, img + 1, np.zeros((8, 8), np.int32), np.full((4, 4), 1 / 16), make_wcs(nx=8, ny=8),
                   ExposureInfo(1, 0, "r", 60000.0, 30.0))
    with pytest.raises(ContractError) as info:
        read_exposure(write_exposure(exp))
    assert info.value.reason == "bad_psf"
