"""Lease cells per CCD and lease requests: our exact cover vs Rubin's sphgeom HEALPix envelope.

For random CCD footprints (51″ test CCDs and 13.6′ LSST CCDs, random positions and
rotations) we count the HEALPix cells of the footprint at orders 8 (lease cells) and 10
(database partitions): our exact cover (``pixels_covering``), Rubin's
``lsst.sphgeom.HealpixPixelization.envelope`` of the same polygon (the peer, unpadded since
sphgeom polygons cannot be dilated), and the former bounding-cone cover. With the 20″ margin
the pipeline uses we also report ours padded. Then the DynamoDB requests of one uncontended
acquire / release on moto's server (cells were one UpdateItem each before).
"""

import json
import time
from pathlib import Path

import astropy.units as u
import numpy as np
import pytest
from astropy_healpix import HEALPix

from alertprod.apdb import cells_for_footprint, dynamo_level1
from alertprod.local.dynamodb import create_level1_table, moto_dynamodb
from alertprod.pixelization import pixels_covering

pytestmark = pytest.mark.bench

RESULTS = Path(__file__).parent / "results" / "leases.json"
N_FOOTPRINTS = 200


def _footprints(side_arcsec, rng):
    out = []
    for ra, dec, angle in zip(rng.uniform(0, 360, N_FOOTPRINTS), rng.uniform(-70, 70, N_FOOTPRINTS),
                              rng.uniform(0, np.pi, N_FOOTPRINTS), strict=True):
        h = side_arcsec / 3600 / 2
        xy = np.array([[-h, -h], [h, -h], [h, h], [-h, h]]) @ np.array(
            [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]).T
        out.append(np.column_stack([ra + xy[:, 0] / np.cos(np.deg2rad(dec)), dec + xy[:, 1]]))
    return out


def _bounding_cone(corners, margin_arcsec, order):
    """The former cover: bounding cone of the corners widened by one pixel size."""
    hp = HEALPix(nside=2**order, order="nested")
    ra, dec = np.deg2rad(corners[:, 0]), np.deg2rad(corners[:, 1])
    vec = np.column_stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)])
    c = vec.mean(axis=0) / np.linalg.norm(vec.mean(axis=0))
    radius = np.rad2deg(np.max(np.arccos(np.clip(vec @ c, -1, 1)))) + margin_arcsec / 3600
    radius += hp.pixel_resolution.to_value(u.deg)
    return hp.cone_search_lonlat(np.arctan2(c[1], c[0]) * u.rad, np.arcsin(c[2]) * u.rad,
                                 radius * u.deg)


def _sphgeom(corners, order):
    from lsst.sphgeom import ConvexPolygon, HealpixPixelization, LonLat, UnitVector3d

    poly = ConvexPolygon([UnitVector3d(LonLat.fromDegrees(float(r), float(d))) for r, d in corners])
    return [p for lo, hi in HealpixPixelization(order).envelope(poly) for p in range(lo, hi)]


def test_bench_lease_cells_and_requests_per_ccd():
    pytest.importorskip("lsst.sphgeom")
    rng = np.random.default_rng(1)
    rows, figures = [], {}
    for label, side in (("test CCD 51in", 51.0), ("LSST CCD 13.6arcmin", 816.0)):
        feet = _footprints(side, rng)
        for order in (8, 10):
            t = time.perf_counter()
            ours0 = [len(pixels_covering(c, order=order)) for c in feet]
            ours_s = (time.perf_counter() - t) / len(feet)
            t = time.perf_counter()
            peer0 = [len(_sphgeom(c, order)) for c in feet]
            peer_s = (time.perf_counter() - t) / len(feet)
            ours20 = [len(pixels_covering(c, margin_arcsec=20, order=order)) for c in feet]
            cone20 = [len(_bounding_cone(c, 20, order)) for c in feet]
            key = f"{label} order {order}"
            figures[key] = {"ours_margin0": np.mean(ours0), "sphgeom_envelope_margin0": np.mean(peer0),
                            "ours_margin20": np.mean(ours20), "bounding_cone_margin20": np.mean(cone20),
                            "ours_ms": 1e3 * ours_s, "sphgeom_ms": 1e3 * peer_s}
            rows.append((key, *figures[key].values()))
    with moto_dynamodb() as client:
        level1 = dynamo_level1(client, create_level1_table(client))
        cells = cells_for_footprint(_footprints(816.0, rng)[0])
        before = level1.metrics.total()
        lease = level1.leases.acquire(cells, "bench")
        acquire = level1.metrics.total() - before
        level1.leases.release(lease)
        release = level1.metrics.total() - before - acquire
    figures["lease_requests"] = {"cells": len(cells), "acquire": acquire, "release": release,
                                 "former_acquire": len(cells), "former_release": len(cells)}
    print(f"\n{'footprint':<32}{'ours':>7}{'sphgeom':>9}{'ratio':>7}{'ours+20″':>10}"
          f"{'cone+20″':>10}{'ratio':>7}{'ours ms':>9}{'sphgeom ms':>11}")
    for key, o0, p0, o20, c20, oms, pms in rows:
        print(f"{key:<32}{o0:7.2f}{p0:9.2f}{o0 / p0:7.2f}{o20:10.2f}{c20:10.2f}{o20 / c20:7.2f}"
              f"{oms:9.2f}{pms:11.2f}")
    print(f"lease of a 13.6′ CCD ({len(cells)} cells): acquire {acquire} request(s), release "
          f"{release} (formerly {len(cells)} + {len(cells)} UpdateItem)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2, default=float) + "\n")
    assert acquire == 1 and release == 1
