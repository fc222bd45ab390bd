"""A night's elements: which night a time is in, the stored bytes, the base catalog's rows."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from astropy.time import Time
from refresh_orbits import NIGHT

from alertprod.errors import OrbitError
from alertprod.orbitrefresh import (
    NightElements,
    RefreshChunk,
    RefreshRequest,
    decode_night_elements,
    encode_night_elements,
    night_catalog,
    night_of,
    parse_message,
    refresh_elements,
    unix_ms_to_mjd_tai,
)
from alertprod.orbitrefresh.nights import night_epoch_mjd_tai

pytestmark = pytest.mark.unit


def _tai(iso: str) -> float:
    return float(Time(iso, scale="utc").tai.mjd)


def test_a_chilean_night_is_one_night_and_rolls_over_at_noon_utc():
    evening = int(Time("2026-03-10T00:00:00", scale="utc").mjd)
    night = [_tai(f"2026-03-10T{h}:00:00") for h in ("23", "23")] + [
        _tai(f"2026-03-11T{h:02d}:30:00") for h in range(0, 11)]
    assert {night_of(t) for t in night} == {evening}  # 23:00 to 10:30 UTC: one night
    assert night_of(_tai("2026-03-11T11:59:00")) == evening
    assert night_of(_tai("2026-03-11T12:00:00")) == evening + 1  # the 12:00 schedule's night
    epoch = night_epoch_mjd_tai(evening)
    assert all(abs(t - epoch) < 0.5 for t in night)  # within half a day of the elements


def test_sqs_sent_timestamps_convert_to_tai():
    when = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
    assert unix_ms_to_mjd_tai(str(int(when.timestamp() * 1000))) == pytest.approx(
        _tai("2026-03-10T12:00:00"), abs=1e-9)
    with pytest.raises(OrbitError, match="unix_ms"):
        unix_ms_to_mjd_tai("soon")
    with pytest.raises(OrbitError, match="mjd_tai"):
        night_of(float("nan"))


@pytest.fixture(scope="module")
def night(base_catalogs) -> NightElements:
    base = base_catalogs[1]
    refreshed = refresh_elements(base, NIGHT)
    return NightElements.from_catalog(refreshed.catalog, night_mjd=NIGHT, base_version="b1",
                                      drift_arcsec=refreshed.drift_arcsec,
                                      close_approach=refreshed.close_approach,
                                      meta={"cpuSeconds": 0.5})


def test_night_elements_round_trip_bit_for_bit(night):
    data = encode_night_elements(night)
    back = decode_night_elements(data)
    assert (back.night_mjd, back.epoch_mjd_tt, back.base_version, back.meta) == (
        NIGHT, NIGHT + 1.0, "b1", {"cpuSeconds": 0.5})
    for name in ("ss_object_id", "a", "e", "i", "node", "argperi", "mean_anomaly",
                 "drift_arcsec", "close_approach"):
        assert np.array_equal(getattr(back, name), getattr(night, name)), name
    assert encode_night_elements(back) == data  # deterministic: the same refresh, the same bytes


@pytest.mark.parametrize("damage", ["magic", "header", "truncated", "trailing"])
def test_damaged_bytes_are_refused(night, damage):
    data = encode_night_elements(night)
    bad = {"magic": b"MPCORB" + data[6:], "header": data.replace(b'"rows"', b'"wors"'),
           "truncated": data[:-3], "trailing": data + b"x"}[damage]
    with pytest.raises(OrbitError, match="data"):
        decode_night_elements(bad)


def test_night_elements_go_into_the_base_rows_by_object_not_by_position(base_catalogs, night):
    base = base_catalogs[1]
    reversed_night = dataclasses.replace(night, **{
        name: getattr(night, name)[::-1] for name in (
            "ss_object_id", "a", "e", "i", "node", "argperi", "mean_anomaly", "drift_arcsec",
            "close_approach")})
    merged = night_catalog(base, reversed_night)
    assert merged.missing == 0 and list(merged.close_approach) == [True, False]
    assert np.array_equal(merged.catalog.a, night.a)
    assert np.all(merged.catalog.epoch_mjd == NIGHT + 1.0)
    assert list(merged.catalog.designation) == list(base.designation)  # names stay the base's
    assert np.allclose(merged.catalog.mean_motion, 0.9856076686 / night.a**1.5, rtol=1e-9)


def test_rows_the_night_lacks_keep_their_base_elements(base_catalogs, night):
    base = base_catalogs[1]
    only_first = dataclasses.replace(night, **{
        name: getattr(night, name)[:1] for name in (
            "ss_object_id", "a", "e", "i", "node", "argperi", "mean_anomaly", "drift_arcsec",
            "close_approach")})
    merged = night_catalog(base, only_first)
    assert merged.missing == 1
    assert merged.catalog.a[1] == base.a[1] and merged.catalog.epoch_mjd[1] == base.epoch_mjd[1]
    assert merged.catalog.epoch_mjd[0] == NIGHT + 1.0


def test_messages_round_trip_and_bad_ones_are_refused():
    chunk = RefreshChunk(NIGHT, "abc", 3, 10, 0.01)
    assert parse_message(chunk.to_message()) == chunk
    assert chunk.run_id == f"orbit-refresh:{NIGHT}:abc" and chunk.unit_key == "00003"
    request = RefreshRequest("mpcorb-upload", "abc")
    assert parse_message(request.to_message()) == request
    for body in ("not json", "[1]", '{"schema": "other/1"}',
                 '{"schema": "alertprod.orbit-refresh-chunk/1", "nightMjd": 1}',
                 RefreshChunk(NIGHT, "abc", 3, 10, 0.01).to_message().replace('"chunk": 3',
                                                                            '"chunk": 12')):
        with pytest.raises(OrbitError):
            parse_message(body)
