"""Precovery work units on the queue: validated on receipt, readable across releases."""

import json

import pytest

from alertprod.errors import PrecoveryError
from alertprod.precovery import PrecoveryUnit, unit_from_message, unit_to_message

pytestmark = pytest.mark.unit


def _unit(**kw):
    base = dict(visit=12, detector=3, band="r", mjd_tai=60000.1, dia_object_ids=(5, 6),
                ra_deg=(150.0, 150.1), dec_deg=(2.0, 2.1), night_mjd_tai=60000.0,
                kinds=("science", "difference", "snapdiff"))
    return PrecoveryUnit(**{**base, **kw})


def test_unit_survives_the_queue_with_its_cached_image_kinds():
    unit = _unit()
    assert unit_from_message(unit_to_message(unit)) == unit


def test_unit_message_of_the_earlier_release_has_unknown_kinds():
    doc = json.loads(unit_to_message(_unit()))
    del doc["kinds"]
    back = unit_from_message(json.dumps(doc))
    assert back.kinds is None and back.dia_object_ids == (5, 6)


@pytest.mark.parametrize("change", [{"band": "q"}, {"ra_deg": (400.0, 1.0)},
                                    {"dec_deg": (2.0,)}])
def test_malformed_unit_is_refused(change):
    with pytest.raises(PrecoveryError):
        _unit(**change)


def test_message_of_another_schema_is_refused():
    with pytest.raises(PrecoveryError, match="schema"):
        unit_from_message(json.dumps({"schema": "something/1"}))
