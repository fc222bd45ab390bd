"""One alert per DiaSource of a CCD (``alertprod.pipeline.alerting``)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table, vstack

from alertprod.imaging.cutouts import read_cutout
from alertprod.photometry.dia_forced import empty_dia_forced
from alertprod.pipeline import steps
from alertprod.pipeline.alerting import build_ccd_alerts
from alertprod.pipeline.compute import read_images
from alertprod.pipeline.config import PipelineConfig
from alertprod.summary.versions import next_object_versions

pytestmark = pytest.mark.unit

T1 = 60000.10


@pytest.fixture(scope="module")
def first_visit(sky, sky_sources, new_deployment):
    """Three new objects on detector 0: (sources, new versions, exposures)."""
    upload = new_deployment().validated(sky.upload(3, 0, T1, sky_sources(3, seed=50)))
    sources = steps.prepare_sources(upload.catalog, processed_mjd_tai=T1)
    none = Table({"diaObjectId": np.zeros(0, np.int64), "ra": np.zeros(0), "dec": np.zeros(0)})
    steps.associate_ccd(sources, none, None, max_dist_arcsec=1.0)
    versions = next_object_versions(sources, Table(), Table(), Table(), empty_dia_forced(),
                                    validity_start_mjd_tai=T1)
    return sources, versions, read_images(upload)


def _alerts(sources, versions, exposures, config=None):
    return build_ccd_alerts(sources, versions, Table(), Table(), {}, {}, exposures,
                            config=config or PipelineConfig())


def test_one_alert_per_source_in_dia_source_id_order(first_visit):
    sources, versions, exposures = first_visit
    alerts = _alerts(sources[::-1], versions, exposures)
    ids = sorted(int(i) for i in sources["diaSourceId"])
    assert [a["diaSourceId"] for a in alerts] == ids
    for alert in alerts:
        assert alert["diaSource"]["diaObjectId"] == alert["diaSourceId"]  # a new object's id
        assert alert["diaSource"]["ssObjectId"] is None  # 0 in the database is null here
        assert alert["diaObject"]["diaObjectId"] == alert["diaSourceId"]
        assert alert["diaObject"]["nDiaSources"] == 1
        assert alert["ssSource"] is None and alert["prvDiaSources"] == []


def test_alert_carries_difference_and_template_cutouts_and_science_only_when_configured(
        first_visit):
    sources, versions, exposures = first_visit
    plain = _alerts(sources, versions, exposures)
    assert all(a["cutoutDifference"] and a["cutoutTemplate"] for a in plain)
    assert all(a["cutoutScience"] is None for a in plain)
    with_science = _alerts(sources, versions, exposures,
                           PipelineConfig(include_science_cutout=True, cutout_size_pix=21))
    for alert in with_science:
        stamp = read_cutout(alert["cutoutScience"])
        assert stamp.image.shape == (21, 21)
        assert read_cutout(alert["cutoutDifference"]).image.shape == (21, 21)


def test_source_off_the_images_still_gets_its_alert_with_null_cutouts(first_visit):
    sources, versions, exposures = first_visit
    stray = sources[:1].copy()
    stray["diaSourceId"] = stray["diaObjectId"] = 999_999_999
    stray["ra"] = stray["ra"] + 1.0  # a degree away from the CCD
    alerts = {a["diaSourceId"]: a for a in _alerts(vstack([sources, stray]), versions, exposures)}
    assert alerts[999_999_999]["cutoutDifference"] is None
    assert alerts[999_999_999]["cutoutTemplate"] is None
    assert alerts[999_999_999]["diaObject"] is None  # no version was built for it
    assert all(a["cutoutDifference"] for i, a in alerts.items() if i != 999_999_999)


def test_missing_template_gives_null_template_cutouts_only(first_visit):
    sources, versions, exposures = first_visit
    alerts = _alerts(sources, versions, {**exposures, "template": None})
    assert all(a["cutoutTemplate"] is None and a["cutoutDifference"] for a in alerts)
