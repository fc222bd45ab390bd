"""An upload stating a time scale other than TAI is converted (with a warning) or quarantined."""

from __future__ import annotations

import io

import pytest
from astropy.io import fits

from alertprod.errors import ContractError, NotFoundError
from alertprod.formats import image_key
from alertprod.ingest import REASONS, quarantine_record, validate_catalog, validate_upload

KEY = "diasources/00000001/000.fits"
MJD = 60000.1
SECOND_D = 1 / 86400.0


def _getter(images, visit=1, detector=0):
    store = {image_key(visit, detector, k): v for k, v in images.items()}

    def get(key):
        if key not in store:
            raise NotFoundError(key)
        return store[key]

    return get


def _restate(data: bytes, **cards) -> bytes:
    """The FITS file with primary-header cards replaced (``None`` deletes one)."""
    with fits.open(io.BytesIO(data)) as hdul:
        for k, v in cards.items():
            k = k.replace("_", "-")
            if v is None:
                del hdul[0].header[k]
            else:
                hdul[0].header[k] = v
        buf = io.BytesIO()
        hdul.writeto(buf)
    return buf.getvalue()


def _refused(fn, *args) -> ContractError:
    with pytest.raises(ContractError) as info:
        fn(*args)
    assert info.value.reason in REASONS
    return info.value


def test_bad_time_scale_is_a_documented_reason():
    assert "bad_time_scale" in REASONS


def test_catalog_without_timesys_is_read_as_tai(upload_factory):
    cat, images = upload_factory(mjd=MJD)
    up = validate_upload(_restate(cat, TIMESYS=None), KEY, _getter(images))
    assert up.catalog.info.mjd_mid_tai == MJD
    assert up.warnings == []


def test_utc_midpoint_is_converted_to_tai(upload_factory):
    """Catalog and images all in UTC: every midpoint is converted, the upload passes."""
    cat, images = upload_factory(mjd=MJD)
    images = {k: _restate(v, TIMESYS="UTC") for k, v in images.items()}
    up = validate_upload(_restate(cat, TIMESYS="UTC"), KEY, _getter(images))
    assert up.catalog.info.mjd_mid_tai == pytest.approx(MJD + 37 * SECOND_D, abs=1e-9)
    assert all(i.mjd_mid_tai == pytest.approx(MJD + 37 * SECOND_D, abs=1e-9)
               for i in up.image_info.values())
    assert sorted(up.warnings) == ["time_scale_converted:catalog:UTC",
                                   "time_scale_converted:difference:UTC",
                                   "time_scale_converted:science:UTC",
                                   "time_scale_converted:template:UTC"]


def test_image_in_utc_agreeing_with_tai_catalog_after_conversion_passes(upload_factory):
    cat, images = upload_factory(mjd=MJD)
    images["difference"] = _restate(images["difference"], TIMESYS="UTC", MJD_MID=MJD - 37 * SECOND_D)
    up = validate_upload(cat, KEY, _getter(images))
    assert up.image_info["difference"].mjd_mid_tai == pytest.approx(MJD, abs=1e-9)
    assert up.warnings == ["time_scale_converted:difference:UTC"]


def test_image_whose_converted_midpoint_disagrees_is_refused(upload_factory):
    """The same number in UTC is 37 s later in TAI: the image belongs to another exposure."""
    cat, images = upload_factory(mjd=MJD)
    images["science"] = _restate(images["science"], TIMESYS="UTC")
    err = _refused(validate_upload, cat, KEY, _getter(images))
    assert err.reason == "image_mismatch"
    assert "TAI" in err.detail


def test_unknown_time_scale_is_quarantined(upload_factory):
    cat, _ = upload_factory()
    err = _refused(validate_catalog, _restate(cat, TIMESYS="LOCAL"), KEY)
    assert err.reason == "bad_time_scale"
    assert "LOCAL" in err.detail
    _, record = quarantine_record("uploads", KEY, err)
    assert record["reason"] == "bad_time_scale" and record["visit"] == 1


@pytest.mark.parametrize("kind", ["science", "difference", "template", "snapdiff"])
def test_image_with_unknown_time_scale_is_quarantined(upload_factory, kind):
    """Not degraded like an unreadable image: its time cannot be checked against the catalog's."""
    cat, images = upload_factory(kinds=("science", "difference", "template", "snapdiff"))
    images[kind] = _restate(images[kind], TIMESYS="MARS")
    err = _refused(validate_upload, cat, KEY, _getter(images))
    assert err.reason == "bad_time_scale"
    assert image_key(1, 0, kind) in err.detail
