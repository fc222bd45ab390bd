"""Midpoints stated in another time scale than TAI are converted, or refused; never read as TAI."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits

from alertprod.errors import ContractError
from alertprod.formats import (
    Exposure,
    ExposureInfo,
    read_diasource_catalog,
    read_exposure,
    read_exposure_info,
    write_exposure,
)
from alertprod.formats.exposure import info_from_header, info_to_header
from alertprod.formats.time_scale import TIME_SCALES, mjd_to_tai, time_scale_from_header

MJD = 60000.25
SECOND_D = 1 / 86400.0
INFO = ExposureInfo(5, 7, "g", MJD, 30.0)


def _header(timesys) -> fits.Header:
    hdr = info_to_header(INFO)
    if timesys is None:
        del hdr["TIMESYS"]
    else:
        hdr["TIMESYS"] = timesys
    return hdr


def _with_timesys(data: bytes, timesys) -> bytes:
    with fits.open(io.BytesIO(data)) as hdul:
        if timesys is None:
            del hdul[0].header["TIMESYS"]
        else:
            hdul[0].header["TIMESYS"] = timesys
        buf = io.BytesIO()
        hdul.writeto(buf)
    return buf.getvalue()


def _exposure_bytes() -> bytes:
    from synthetic import make_wcs
    img = np.zeros((16, 16), np.float32)
    psf = np.zeros((5, 5))
    psf[2, 2] = 1
    return write_exposure(Exposure(img, img + 1, np.zeros((16, 16), np.int32), psf,
                                   make_wcs(nx=16, ny=16), INFO))


def test_written_files_state_tai():
    assert info_to_header(INFO)["TIMESYS"] == "TAI"


def test_absent_timesys_is_read_as_tai():
    info = info_from_header(_header(None))
    assert info.mjd_mid_tai == MJD
    assert info.header_time_scale == "TAI"


def test_tai_midpoint_is_read_unchanged():
    assert info_from_header(_header("TAI")).mjd_mid_tai == MJD


def test_utc_midpoint_is_converted_to_tai():
    info = info_from_header(_header("UTC"))
    assert info.header_time_scale == "UTC"
    # TAI − UTC = 37 s since 2017
    assert info.mjd_mid_tai == pytest.approx(MJD + 37 * SECOND_D, abs=1e-5 * SECOND_D)  # float64: ~1 µs


@pytest.mark.parametrize("timesys,offset_s", [
    ("TT", -32.184), ("TDT", -32.184), ("ET", -32.184),   # TT = TAI + 32.184 s
    ("GMT", 37.0), ("UT", 37.0), ("utc", 37.0),           # aliases and case
    ("GPS", 19.0),                                         # TAI = GPS + 19 s
    ("IAT", 0.0),
])
def test_fits_scale_names_and_aliases_are_converted_to_tai(timesys, offset_s):
    info = info_from_header(_header(timesys))
    assert (info.mjd_mid_tai - MJD) / SECOND_D == pytest.approx(offset_s, abs=1e-5)


def test_barycentric_midpoint_is_converted_with_the_observatory_location():
    tdb = info_from_header(_header("TDB")).mjd_mid_tai
    # TDB − TT is periodic, below 1.7 ms: the result is TT's within that
    assert (tdb - MJD) / SECOND_D == pytest.approx(-32.184, abs=2e-3)


@pytest.mark.parametrize("timesys", ["LOCAL", "TAI-ish", "BJD", 7])
def test_unknown_time_scale_is_refused_with_its_reason(timesys):
    with pytest.raises(ContractError) as info:
        info_from_header(_header(timesys), what="x.fits")
    assert info.value.reason == "bad_time_scale"
    assert "x.fits" in info.value.detail and "TIMESYS" in info.value.detail


def test_every_named_scale_converts():
    for name in TIME_SCALES:
        scale = time_scale_from_header(name)
        assert abs(mjd_to_tai(MJD, scale, obs_lon_deg=-70.7, obs_lat_deg=-30.2,
                              obs_height_m=2663.0) - MJD) < 60 * SECOND_D


def test_image_header_in_utc_is_converted_on_reading():
    data = _with_timesys(_exposure_bytes(), "UTC")
    for info in (read_exposure_info(data), read_exposure(data).info):
        assert info.mjd_mid_tai == pytest.approx(MJD + 37 * SECOND_D, abs=1e-9)
        assert info.header_time_scale == "UTC"


def test_image_rewritten_after_conversion_states_tai():
    exp = read_exposure(_with_timesys(_exposure_bytes(), "UTC"))
    again = read_exposure(write_exposure(exp))
    assert again.info.header_time_scale == "TAI"
    assert again.info.mjd_mid_tai == exp.info.mjd_mid_tai


def test_catalog_header_in_utc_is_converted(upload_factory):
    cat, _ = upload_factory(mjd=MJD, header={"TIMESYS": "UTC"})
    info = read_diasource_catalog(cat).info
    assert info.mjd_mid_tai == pytest.approx(MJD + 37 * SECOND_D, abs=1e-9)


def test_catalog_with_unknown_time_scale_is_refused(upload_factory):
    cat, _ = upload_factory(header={"TIMESYS": "LOCAL"})
    with pytest.raises(ContractError) as info:
        read_diasource_catalog(cat)
    assert info.value.reason == "bad_time_scale"


def test_stated_scale_takes_no_part_in_comparisons():
    stated_utc = ExposureInfo(5, 7, "g", MJD, 30.0, header_time_scale="UTC")
    assert stated_utc == INFO and hash(stated_utc) == hash(INFO)
