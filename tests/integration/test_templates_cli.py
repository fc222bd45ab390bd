"""``alertprod templates load|list`` on moto's S3: checked, loaded, listed, idempotent."""

from __future__ import annotations

import json

import numpy as np
import pytest
from moto_server import moto_environment
from synthetic import make_wcs

from alertprod.archive.data_release import DR_INDEX_KEY, dr_template_key
from alertprod.cli import main
from alertprod.formats import Exposure, ExposureInfo, write_exposure
from alertprod.imaging.psf import gaussian_psf

pytestmark = pytest.mark.integration


def _coadd(patch: str, ra0: float) -> bytes:
    """A small noiseless r-band coadd with the data-release cards."""
    wcs = make_wcs(ra0, 2.0, nx=64, ny=64)
    plane = np.zeros((64, 64), np.float32)
    return write_exposure(Exposure(plane, plane + 1.0, np.zeros((64, 64), np.int32),
                                   gaussian_psf(3.0, size_pix=15), wcs,
                                   ExposureInfo(0, 0, "r", 60000.0, 2400.0),
                                   {"DRNAME": "DR1", "DRPATCH": patch, "DRDEPTH": 80}))


@pytest.fixture
def coadds(tmp_path):
    for patch, ra0 in (("p0000", 150.0), ("p0001", 150.05)):
        (tmp_path / f"{patch}_r.fits").write_bytes(_coadd(patch, ra0))
    return tmp_path


def test_operator_loads_checks_and_lists_a_release(coadds, capsys):
    with moto_environment(restore=["ARCHIVE_BUCKET"]):
        import boto3

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="archive")
        capsys.readouterr()  # moto's start-up banner
        assert main(["templates", "load", str(coadds), "--check"]) == 0
        assert json.loads(capsys.readouterr().out)["checked"] is True
        assert s3.list_objects_v2(Bucket="archive").get("KeyCount") == 0  # a check writes nothing
        assert main(["templates", "load", str(coadds), "--archive-bucket", "archive"]) == 0
        report = json.loads(capsys.readouterr().out)
        assert (report["templates"], report["written"]) == (2, 2)
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket="archive")["Contents"]}
        assert keys == {DR_INDEX_KEY, dr_template_key("DR1", "r", "p0000"),
                        dr_template_key("DR1", "r", "p0001")}
        import os

        os.environ["ARCHIVE_BUCKET"] = "archive"
        assert main(["templates", "load", str(coadds)]) == 0  # again: nothing rewritten
        assert json.loads(capsys.readouterr().out)["unchanged"] == 2
        assert main(["templates", "list"]) == 0
        listing = capsys.readouterr().out
        assert "release DR1: 2 coadds" in listing and "p0001" in listing
        (coadds / "broken.fits").write_bytes(b"SIMPLE  = nonsense")
        assert main(["templates", "load", str(coadds)]) == 1
        assert "broken.fits" in capsys.readouterr().err
