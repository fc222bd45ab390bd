"""The shared light-curve drawing: the precovery SVG's points are the rows, where the rows say."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from alertprod.errors import PrecoveryError
from alertprod.plotting import precovery_light_curve_svg

SVG = "{http://www.w3.org/2000/svg}"


def rows_of_two_targets():
    rng = np.random.default_rng(3)
    rows = []
    for k in range(60):
        flux = float(rng.normal(800.0, 300.0))
        undetected = k % 5 == 0
        rows.append({"target": k % 2, "visit": 1000 + k, "detector": k % 3, "band": "gri"[k % 3],
                     "midpointMjdTai": 60000.0 + 0.37 * k, "psfFlux": 40.0 if undetected else flux,
                     "psfFluxErr": 50.0, "scienceFlux": flux + 5000.0, "scienceFluxErr": 70.0,
                     "recreated": k < 24, "upperLimit": 250.0 if undetected else None})
    rows.append({**rows[1], "visit": 9999, "psfFlux": None, "scienceFlux": None, "upperLimit": None})
    return rows


def points(svg: bytes) -> dict[str, list[tuple[int, float, float]]]:
    """Per group id: (row, x, y) of each marker (x, y: the centre of its path)."""
    root = ET.fromstring(svg)
    out = {}
    for group in root.iter(f"{SVG}g"):
        gid = group.get("id", "")
        if not re.fullmatch(r"(psf|sci)-\w-(cached|recreated|limit-cached|limit-recreated)", gid):
            continue
        found = []
        for a in group.iter(f"{SVG}a"):
            use = a.find(f".//{SVG}use")  # matplotlib: a marker defined once, placed per point
            if use is not None:
                found.append((int(a.get("data-row")), float(use.get("x")), float(use.get("y"))))
                continue
            path = a.find(f".//{SVG}path")  # or, for few points, each marker's own path
            xy = np.array(re.findall(r"(-?[\d.]+) (-?[\d.]+)", path.get("d")), dtype=float)
            found.append((int(a.get("data-row")), *(xy.min(axis=0) + xy.max(axis=0)) / 2))  # symmetric markers
        out[gid] = found
    return out


def test_each_plotted_point_is_one_row_of_the_chosen_target_in_its_panel():
    rows = rows_of_two_targets()
    drawn = points(precovery_light_curve_svg(rows, target=1))
    for band in "gri":
        mine = [k for k, r in enumerate(rows) if r["target"] == 1 and r["band"] == band
                and r["scienceFlux"] is not None]
        for quantity in ("psf", "sci"):
            got = sorted(p[0] for gid, pts in drawn.items() if gid.startswith(f"{quantity}-{band}-")
                         for p in pts)
            assert got == sorted(mine)
        limits = {p[0] for gid, pts in drawn.items() if gid.startswith(f"psf-{band}-limit") for p in pts}
        assert limits == {k for k in mine if rows[k]["upperLimit"] is not None}
        recreated = {p[0] for gid, pts in drawn.items()
                     if gid.startswith(f"psf-{band}-") and gid.endswith("recreated") for p in pts}
        assert recreated == {k for k in mine if rows[k]["recreated"]}


def test_points_sit_at_their_time_and_flux():
    rows = rows_of_two_targets()
    drawn = points(precovery_light_curve_svg(rows))
    for band in "gri":
        for quantity, column in (("psf", "psfFlux"), ("sci", "scienceFlux")):
            pts = [p for gid, ps in drawn.items() if gid.startswith(f"{quantity}-{band}-") for p in ps]
            # a row not detected is drawn at its upper limit on the difference-flux panel
            value = np.array([rows[k]["upperLimit"] if quantity == "psf" and rows[k]["upperLimit"]
                              else rows[k][column] for k, *_ in pts])
            t = np.array([rows[k]["midpointMjdTai"] for k, *_ in pts])
            x = np.array([p[1] for p in pts])
            y = np.array([p[2] for p in pts])
            # one linear map per panel: time to x (increasing), flux to y (SVG y grows downwards)
            for data, pix, sign in ((t, x, 1.0), (value, y, -1.0)):
                slope, offset = np.polyfit(data, pix, 1)
                assert sign * slope > 0
                assert np.max(np.abs(slope * data + offset - pix)) < 0.05


def test_light_curve_without_measurements_says_so():
    svg = precovery_light_curve_svg([{"target": 0, "band": "r", "midpointMjdTai": None}], target=0)
    assert b"no measurements" in svg and b"data-row" not in svg


def test_rows_that_are_not_a_list_of_objects_are_refused():
    with pytest.raises(PrecoveryError, match="rows"):
        precovery_light_curve_svg([1, 2])
