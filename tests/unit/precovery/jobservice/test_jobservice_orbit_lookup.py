"""An ``orbit`` target by designation is found in the operator-loaded orbit catalog."""

from __future__ import annotations

import pytest

from alertprod.apdb import MemoryApdb
from alertprod.precovery.jobservice.orbit_lookup import catalog_lookup
from alertprod.precovery.targets import TargetError, parse_target

pytestmark = pytest.mark.unit

# Published MPCORB.DAT records (MPC, orbits of epoch 2025 Nov. 21.0 TT), verbatim.
CERES = ("00001    3.34  0.15 K25BL 231.53974   73.29974   80.24964   10.58789  0.0795764  "
         "0.21429712   2.7656157  0 MPO980521  7297 126 1801-2026 0.83 M-v 30k Veres      "
         "4000      (1) Ceres              20260103")
EROS = ("00433   10.38  0.15 K25BL 310.55432  178.92978  304.27008   10.82847  0.2228360  "
        "0.55977529   1.4581210  0 E2025-YE5 16519  59 1893-2025 0.52 M-v 3Ek MPCORBFIT  "
        "1804    (433) Eros               20251222")


def test_a_designation_is_found_readable_or_packed_and_an_unknown_one_is_refused():
    apdb = MemoryApdb()
    lookup = catalog_lookup(apdb)
    with pytest.raises(TargetError, match="not in the loaded orbit catalog"):
        parse_target({"kind": "orbit", "designation": "433"}, orbit_lookup=lookup)  # nothing loaded
    apdb.store_orbit_catalog(CERES + "\n" + EROS + "\n")
    for name in ("(433) Eros", "433", "00433"):
        target = parse_target({"kind": "orbit", "designation": name}, orbit_lookup=lookup)
        assert list(target.orbit.packed_designation) == ["00433"]
    with pytest.raises(TargetError, match="not in the loaded orbit catalog"):
        parse_target({"kind": "orbit", "designation": "2014 QX17"}, orbit_lookup=lookup)
    apdb.store_orbit_catalog(CERES + "\n")  # a new version replaces the parsed copy
    with pytest.raises(TargetError):
        parse_target({"kind": "orbit", "designation": "433"}, orbit_lookup=lookup)
