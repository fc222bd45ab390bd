"""The upload contract: every violation is refused with its machine-readable reason."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.errors import ContractError, NotFoundError
from alertprod.formats import image_key
from alertprod.ingest import REASONS, validate_catalog, validate_upload

KEY = "diasources/00000001/000.fits"


def _getter(images, visit=1, detector=0):
    store = {image_key(visit, detector, k): v for k, v in images.items()}

    def get(key):
        if key not in store:
            raise NotFoundError(key)
        return store[key]

    return get


def _reason(fn, *args):
    with pytest.raises(ContractError) as info:
        fn(*args)
    assert info.value.reason in REASONS
    return info.value.reason


def test_valid_upload_passes_with_all_images(upload_factory):
    cat, images = upload_factory()
    up = validate_upload(cat, KEY, _getter(images))
    assert len(up.catalog.table) == 20
    assert set(up.image_info) == {"science", "difference", "template"}
    assert up.warnings == []


def test_not_fits_is_refused():
    assert _reason(validate_catalog, b"this is not a FITS file", KEY) == "not_fits"


def test_missing_required_column_is_named(upload_factory):
    cat, _ = upload_factory(columns={"psfFluxErr": None})
    with pytest.raises(ContractError) as info:
        validate_catalog(cat, KEY)
    assert info.value.reason == "missing_column"
    assert "psfFluxErr" in info.value.detail


@pytest.mark.parametrize("col,value", [("ra", np.nan), ("dec", 95.0), ("ra", 400.0), ("raErr", -1.0)])
def test_nan_or_out_of_range_coordinates_are_refused(upload_factory, col, value):
    cat0, _ = upload_factory()
    from alertprod.formats import read_diasource_catalog
    vals = np.array(read_diasource_catalog(cat0).table[col], dtype=float)
    vals[3] = value
    cat, _ = upload_factory(columns={col: vals})
    assert _reason(validate_catalog, cat, KEY) == "bad_value"


def test_duplicate_ids_are_refused(upload_factory):
    ids = (1 * 1000 + 0) * 100000 + np.arange(1, 21, dtype=np.int64)
    ids[5] = ids[4]
    cat, _ = upload_factory(columns={"diaSourceId": ids})
    assert _reason(validate_catalog, cat, KEY) == "duplicate_id"


def test_header_key_mismatch_is_refused(upload_factory):
    cat, _ = upload_factory(visit=2)
    assert _reason(validate_catalog, cat, KEY) == "key_mismatch"


def test_missing_header_keyword_is_refused(upload_factory):
    cat, _ = upload_factory(header={"BAND": "q"})
    assert _reason(validate_catalog, cat, KEY) == "bad_header"


def test_positions_inconsistent_with_wcs_are_refused(upload_factory):
    cat0, _ = upload_factory()
    from alertprod.formats import read_diasource_catalog
    ra = np.array(read_diasource_catalog(cat0).table["ra"], dtype=float)
    ra[0] += 10 / 3600
    cat, _ = upload_factory(columns={"ra": ra})
    assert _reason(validate_catalog, cat, KEY) == "position_mismatch"


def test_no_images_at_all_is_refused(upload_factory):
    cat, _ = upload_factory()
    assert _reason(validate_upload, cat, KEY, _getter({})) == "missing_images"


@pytest.mark.parametrize("kind", ["science", "difference", "template"])
def test_one_missing_image_is_refused_with_its_own_reason(upload_factory, kind):
    cat, images = upload_factory()
    del images[kind]
    with pytest.raises(ContractError) as info:
        validate_upload(cat, KEY, _getter(images))
    assert info.value.reason == "missing_image" and kind in info.value.detail


def test_image_of_another_visit_is_refused(upload_factory):
    cat, _ = upload_factory()
    _, other = upload_factory(visit=7)
    assert _reason(validate_upload, cat, KEY, _getter(other)) == "image_mismatch"


def test_bad_key_is_refused(upload_factory):
    cat, _ = upload_factory()
    assert _reason(validate_catalog, cat, "diasources/1/0.fits") == "bad_key"


def test_every_reason_code_has_a_row_in_the_formats_page():
    from pathlib import Path

    page = (Path(__file__).resolve().parents[3] / "docs" / "formats.md").read_text()
    quarantine = page[page.index("## 4. Quarantine"):page.index("## 5.")]
    rows = {line.split("|")[1].strip().strip("`") for line in quarantine.splitlines()
            if line.startswith("| `")}
    assert rows == set(REASONS)
