"""Alert records for the filter tests: built with the project's alert builder, decoded as brokers get them.

``filter_alerts`` is a night's worth of varied alerts: every field filled by
``alertprod.alerts.examples.example_row``, then made realistic for filtering — bands, SNRs,
reliabilities, round values that equality tests can hit, strings with quotes, about one
nullable value in five set to null, one alert in six a solar-system source (no diaObject, an
ssSource) — serialised into an Avro container with the Rubin schema and read back with fastavro,
so the filters see exactly what ``alertprod filters run`` sees in a replay export.
"""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.alerts import alert_container_bytes, build_alert, read_alert_container
from alertprod.alerts.examples import example_row
from alertprod.alerts.schema import record_spec

N_ALERTS = 240
_BANDS = ("u", "g", "r", "i", "z", "y")
_STRINGS = ("v1", "v2", "it's", "", "O'Brien", "r")


def _nullify(row: dict, record: str, rng: np.random.Generator, keep: set[str]) -> dict:
    for spec in record_spec(record):
        if spec.nullable and spec.name not in keep and rng.random() < 0.2:
            row[spec.name] = None
    return row


def _make_alert(k: int, rng: np.random.Generator) -> dict:
    ra = float(rng.choice([rng.uniform(0, 360), rng.uniform(359.99, 360.0), rng.uniform(0, 0.01)]))
    dec = float(np.clip(rng.choice([rng.uniform(-60, 10), rng.uniform(89.99, 90)]), -90, 90))
    mjd = 60800.0 + float(rng.uniform(0, 30))
    src_id = 10_000 + k
    solar = k % 6 == 5
    obj_id = None if solar else 50_000 + k // 2
    source = example_row("diaSource", rng, diaSourceId=src_id, visit=int(rng.integers(1, 6)),
                         detector=int(rng.integers(0, 189)), midpointMjdTai=mjd,
                         timeProcessedMjdTai=mjd + 0.0007, ra=ra, dec=dec,
                         diaObjectId=obj_id, ssObjectId=(900 + k) if solar else None,
                         parentDiaSourceId=None, timeWithdrawnMjdTai=None,
                         band=_BANDS[int(rng.integers(0, 6))],
                         snr=float(rng.choice([rng.uniform(0, 50), 5.0, 10.0, -3.5])),
                         psfFlux=float(rng.choice([rng.normal(0, 2000), 0.0, 1000.0])),
                         reliability=float(np.float32(rng.uniform(0, 1))),
                         reliabilityVersion=_STRINGS[int(rng.integers(0, len(_STRINGS)))])
    for name in ("apFlux", "scienceFlux", "templateFlux", "extendedness"):
        if rng.random() < 0.3:
            source[name] = float(int(rng.integers(-3, 4)))
    _nullify(source, "diaSource", rng, keep={"band", "diaObjectId", "ssObjectId"})
    dia_object = ss_source = None
    if not solar:
        dia_object = example_row("diaObject", rng, diaObjectId=obj_id, ra=ra, dec=dec,
                                 validityStartMjdTai=mjd, nDiaSources=int(rng.integers(1, 40)),
                                 firstDiaSourceMjdTai=mjd - float(rng.choice([0.0, rng.uniform(0, 400)])))
        for band in "ugrizy":
            if rng.random() < 0.3:
                dia_object[f"{band}_psfFluxMean"] = float(int(rng.integers(-2, 3)) * 500)
        _nullify(dia_object, "diaObject", rng, keep=set())
    else:
        ss_source = example_row("ssSource", rng, diaSourceId=src_id, ssObjectId=900 + k,
                                designation=_STRINGS[int(rng.integers(0, len(_STRINGS)))],
                                diaDistanceRank=int(rng.integers(1, 4)))
        _nullify(ss_source, "ssSource", rng, keep=set())
    reason = [None, "deep drilling", "it's", "wfd"][int(rng.integers(0, 4))]
    return build_alert(source, dia_object=dia_object, prv_dia_sources=[], prv_dia_forced_sources=[],
                       ss_source=ss_source, cutout_difference=None, cutout_template=None,
                       observation_reason=reason, target_name=None if rng.random() < 0.5 else "field 7")


@pytest.fixture(scope="session")
def filter_alerts() -> list[dict]:
    """240 decoded alert records (Rubin schema, fastavro), with nulls and solar-system alerts."""
    rng = np.random.default_rng(20261205)
    alerts = [_make_alert(k, rng) for k in range(N_ALERTS)]
    return list(read_alert_container(alert_container_bytes(alerts)))
