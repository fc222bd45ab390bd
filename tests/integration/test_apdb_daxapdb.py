"""Our export is stored unchanged by Rubin's own lsst-dax-apdb SQLite backend and reads back."""

import numpy as np
import pytest

from alertprod.apdb import DynamoApdb
from alertprod.apdb.schema import rubin_columns
from alertprod.apdb.testing import make_ccd_writes, make_objects
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb

pytest.importorskip("lsst.dax.apdb")
pytest.importorskip("moto")
pytestmark = pytest.mark.integration

RA, DEC, T0 = 150.0, 2.0, 60000.2


@pytest.fixture(scope="module")
def exported():
    with moto_dynamodb() as client:
        apdb = DynamoApdb(client, create_level1_table(client))
        objs = make_objects(10, RA, DEC, 0.02)
        apdb.store_ccd(make_ccd_writes(objs, 1, 1, T0, new=True), lease=None)
        got = apdb.get_dia_objects_by_id(objs["diaObjectId"])
        apdb.store_ccd(make_ccd_writes(got, 2, 1, T0 + 1, detected=np.arange(10) < 6),
                       lease=None)
        return apdb.export()


def test_export_is_stored_by_rubin_sqlite_apdb_and_reads_back(exported, tmp_path):
    import astropy.time
    from lsst.dax.apdb import Apdb
    from lsst.dax.apdb.sql import ApdbSql
    from lsst.sphgeom import Angle, Circle, LonLat, UnitVector3d

    config = ApdbSql.init_database(db_url=f"sqlite:///{tmp_path}/apdb.db")
    rubin = Apdb.from_config(config)
    visit_time = astropy.time.Time(T0 + 1, format="mjd", scale="tai")
    # alertprod's extension columns (docs/apdb.md) are dropped; every Rubin column goes in unchanged
    rubin.store(visit_time, exported["DiaObject"].to_pandas(),
                rubin_columns(exported["DiaSource"], "DiaSource").to_pandas(),
                rubin_columns(exported["DiaForcedSource"], "DiaForcedSource").to_pandas())

    region = Circle(UnitVector3d(LonLat.fromDegrees(RA, DEC)), Angle.fromDegrees(0.1))
    objects = rubin.getDiaObjects(region).sort_values("diaObjectId")
    ours = exported["DiaObject"]
    assert objects["diaObjectId"].tolist() == list(ours["diaObjectId"])
    assert np.allclose(objects["ra"], ours["ra"], rtol=0, atol=1e-12)
    assert np.allclose(objects["r_psfFluxMean"], ours["r_psfFluxMean"])
    later = astropy.time.Time(T0 + 2, format="mjd", scale="tai")
    sources = rubin.getDiaSources(region, objects["diaObjectId"].tolist(), later)
    assert sorted(sources["diaSourceId"]) == sorted(exported["DiaSource"]["diaSourceId"])
    forced = rubin.getDiaForcedSources(region, objects["diaObjectId"].tolist(), later)
    assert len(forced) == len(exported["DiaForcedSource"]) == 4
    assert np.allclose(np.sort(forced["psfFlux"]), np.sort(exported["DiaForcedSource"]["psfFlux"]))
