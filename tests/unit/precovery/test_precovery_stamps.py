"""Postage stamps of a precovery job: FITS with a valid WCS per (target, epoch), PNG previews."""

from __future__ import annotations

import io

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from alertprod.precovery.job_plan import JobUnit
from alertprod.precovery.job_unit import measure_job_unit
from alertprod.precovery.stamps import STAMP_SIZE_PIX, make_stamps

pytestmark = pytest.mark.unit

CENTRE = STAMP_SIZE_PIX // 2


def _unit(source, ra, dec, targets=(0, 1, 2), visit=42):
    return JobUnit(visit, 3, "r", 60500.2, source, tuple(targets), tuple(ra), tuple(dec))


def _fits(stamp):
    return fits.open(io.BytesIO(stamp.data))


@pytest.mark.parametrize("source", ["cache", "archive"])
def test_each_target_gets_a_fits_stamp_centred_on_it_with_its_provenance(stores, true_fluxes, source):
    images, archive, ra, dec = stores
    out = measure_job_unit(_unit(source, ra, dec), images=images, archive=archive,
                           processed_mjd_tai=60600.0, stamps=True)
    names = [s.name for s in out.stamps]
    assert len(names) == len(set(names)) == 6  # a FITS and a PNG per target
    fits_stamps = [s for s in out.stamps if s.content_type == "application/fits"]
    assert [s.name for s in fits_stamps] == [f"stamps/target{t:05d}/00000042_003.fits" for t in range(3)]
    for t, stamp in enumerate(fits_stamps):
        with _fits(stamp) as hdul:
            head = hdul[0].header
            assert (head["VISIT"], head["DETECTOR"], head["BAND"], head["TARGET"]) == (42, 3, "r", t)
            assert head["MJD-MID"] == 60500.2 and head["RECREATE"] == (source == "archive")
            assert head["TEMPLATE"] == f"{source}:template"
            diff = hdul["DIFF"]
            assert diff.data.shape == (STAMP_SIZE_PIX, STAMP_SIZE_PIX)
            assert {h.name for h in hdul[1:]} == {"DIFF", "DIFFVAR", "DIFFMASK", "SCIENCE"}
            x, y = WCS(diff.header).all_world2pix(ra[t], dec[t], 0)
            assert abs(x - CENTRE) <= 0.5 and abs(y - CENTRE) <= 0.5  # the WCS is the image's, shifted
            # the whole stamp has data, re-created or not, and holds the transient's flux
            assert np.all(np.isfinite(diff.data)) and np.all(np.isfinite(hdul["SCIENCE"].data))
            core = diff.data[CENTRE - 10:CENTRE + 11, CENTRE - 10:CENTRE + 11]
            assert core.sum() == pytest.approx(true_fluxes[t], rel=0.1, abs=400.0)
            assert np.unravel_index(np.argmax(core), core.shape) in {(r, c) for r in (9, 10, 11)
                                                                    for c in (9, 10, 11)}
    previews = [s for s in out.stamps if s.content_type == "image/png"]
    assert all(p.data.startswith(b"\x89PNG") for p in previews)


def test_a_moving_target_gets_one_stamp_per_epoch_centred_on_that_epochs_position(stores):
    """Two epochs of one target at two different positions: two stamps, each centred on its own."""
    images, archive, ra, dec = stores
    first = measure_job_unit(_unit("cache", ra[:1], dec[:1], targets=(0,)), images=images,
                             archive=archive, processed_mjd_tai=60600.0, stamps=True)
    second = measure_job_unit(_unit("archive", ra[1:2], dec[1:2], targets=(0,)), images=images,
                              archive=archive, processed_mjd_tai=60600.0, stamps=True)
    a, b = (next(s for s in m.stamps if s.name.endswith(".fits")) for m in (first, second))
    with _fits(a) as ha, _fits(b) as hb:
        for hdul, r, d in ((ha, ra[0], dec[0]), (hb, ra[1], dec[1])):
            assert hdul[0].header["RA_TARG"] == pytest.approx(r, abs=1e-12)
            wcs = WCS(hdul["DIFF"].header)
            x, y = wcs.all_world2pix(r, d, 0)
            assert abs(x - CENTRE) <= 0.5 and abs(y - CENTRE) <= 0.5
        # each stamp shows its own epoch's source at the centre, not a fixed grid
        assert ha["DIFF"].data[CENTRE, CENTRE] > 5 * np.nanstd(ha["DIFF"].data[:10, :10])
        assert hb["DIFF"].data[CENTRE, CENTRE] > 5 * np.nanstd(hb["DIFF"].data[:10, :10])


def test_a_stamp_near_the_edge_is_padded_with_nan_and_one_off_the_image_is_skipped(stores):
    images, archive, ra, dec = stores
    from alertprod.formats import image_key, read_exposure

    difference = read_exposure(images.get(image_key(42, 3, "difference")))
    edge_ra, edge_dec = difference.wcs.all_pix2world([3.0, -200.0], [250.0, 250.0], 0)
    stamps = make_stamps(difference, None, [0, 1], edge_ra.tolist(), edge_dec.tolist(), visit=42,
                         detector=3, band="r", mjd_tai=60500.2, recreated=False,
                         template="cache:template", preview=False)
    assert [s.name for s in stamps] == ["stamps/target00000/00000042_003.fits"]
    with _fits(stamps[0]) as hdul:
        data = hdul["DIFF"].data
        assert np.all(np.isnan(data[:, :CENTRE - 3])) and np.all(np.isfinite(data[:, CENTRE - 3:]))
        assert "SCIENCE" not in hdul
