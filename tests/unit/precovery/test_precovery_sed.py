"""Colour corrections from a user's SED (precovery-service option E)."""

from __future__ import annotations

import numpy as np
import pytest

from alertprod.precovery.sed import BANDS, colour_corrections, parse_sed
from alertprod.precovery.targets import TargetError

pytestmark = pytest.mark.unit


def test_a_source_flat_in_fnu_needs_no_correction():
    k = colour_corrections(parse_sed({"kind": "power_law", "alpha": 0}))
    assert list(k) == list(BANDS)
    assert all(v == pytest.approx(1.0, abs=2e-3) for v in k.values())


def test_a_tabulated_sed_gives_what_its_parametric_form_gives():
    wave = np.linspace(2500.0, 12000.0, 2000)
    nu = 2.99792458e18 / wave
    table = {"kind": "table", "wavelength_angstrom": wave.tolist(),
             "flux": (nu ** 2.0).tolist(), "flux_per": "frequency"}
    as_flam = {"kind": "table", "wavelength_angstrom": wave.tolist(),
               "flux": (nu ** 2.0 / wave**2).tolist()}  # the same SED as fλ
    k_param = colour_corrections(parse_sed({"kind": "power_law", "alpha": 2}))
    assert abs(k_param["u"] - 1.0) > 1e-3  # a correction worth checking
    for doc in (table, as_flam):
        k = colour_corrections(parse_sed(doc))
        assert all(k[b] == pytest.approx(k_param[b], rel=2e-3) for b in BANDS)


def test_curvature_sets_the_size_and_a_steep_red_source_is_corrected_most_in_the_wide_blue_band():
    # fν ∝ ν^α: the band mean of a convex SED exceeds its value at the pivot (Jensen), so k < 1
    steep = colour_corrections(parse_sed({"kind": "power_law", "alpha": -4}))
    assert all(v < 1.0 for v in steep.values())
    assert min(steep, key=steep.get) in ("u", "g")  # the widest bands relative to λ
    cool = colour_corrections(parse_sed({"kind": "blackbody", "temperature_k": 3000}))
    hot = colour_corrections(parse_sed({"kind": "blackbody", "temperature_k": 30000}))
    assert abs(cool["u"] - 1) > abs(hot["r"] - 1)


@pytest.mark.parametrize("doc, message", [
    ({"kind": "spline"}, "kind"),
    ({"kind": "power_law", "alpha": "2"}, "alpha"),
    ({"kind": "blackbody", "temperature_k": 10}, "temperature_k"),
    ({"kind": "table", "wavelength_angstrom": [3000, 2000], "flux": [1, 1]}, "increase"),
    ({"kind": "table", "wavelength_angstrom": [4000, 5000], "flux": [1, 1]}, "cover"),
    ({"kind": "table", "wavelength_angstrom": [2000, 13000], "flux": [1, "x"]}, "numbers"),
    ({"kind": "power_law", "alpha": 1, "extra": 2}, "unknown"),
])
def test_malformed_seds_are_refused(doc, message):
    with pytest.raises(TargetError, match=message):
        parse_sed(doc)
