"""Solar-system orbits: MPCORB.DAT I/O, Keplerian propagation, topocentric ephemerides.

- :mod:`~alertprod.orbits.catalog` — :class:`OrbitCatalog`, one row of elements per object;
- :mod:`~alertprod.orbits.mpcorb` — the MPC's MPCORB.DAT format, read and written;
- :mod:`~alertprod.orbits.designations` — packed designations and epochs;
- :mod:`~alertprod.orbits.kepler` — two-body propagation, elements ↔ state vectors;
- :mod:`~alertprod.orbits.ephemeris` — topocentric light-time-corrected positions at epochs;
- :mod:`~alertprod.orbits.nbody` — perturbed (n-body, REBOUND) propagation: states, osculating
  elements at a new epoch, positions across years;
- :mod:`~alertprod.orbits.population` — synthetic orbits through chosen fields (the simulator);
- :mod:`~alertprod.orbits.rows` — SSObject, SSSource and ``mpc_orbits`` rows of known asteroids.

See docs/solar-system.md for frames, time scales and accuracy.
"""

import alertprod._astropy_config  # noqa: F401  (offline IERS tables, before any astropy time use)
from alertprod.orbits.catalog import OrbitCatalog
from alertprod.orbits.designations import (
    pack_designation,
    pack_epoch,
    unpack_designation,
    unpack_epoch,
)
from alertprod.orbits.ephemeris import (
    Ephemeris,
    observer_states,
    predict_positions,
    predict_positions_many,
    select_near,
)
from alertprod.orbits.kepler import (
    Elements,
    StateVector,
    elements_to_state,
    propagate,
    solve_kepler,
    state_to_elements,
)
from alertprod.orbits.mpcorb import read_mpcorb, write_mpcorb
from alertprod.orbits.nbody import osculating_elements_at, predict_positions_nbody, propagate_states
from alertprod.orbits.population import orbit_through, provisional_designations
from alertprod.orbits.rows import mpc_orbit_records, ss_object_rows, ss_source_records

__all__ = [
    "Elements",
    "Ephemeris",
    "OrbitCatalog",
    "StateVector",
    "elements_to_state",
    "mpc_orbit_records",
    "observer_states",
    "orbit_through",
    "osculating_elements_at",
    "pack_designation",
    "pack_epoch",
    "predict_positions",
    "predict_positions_many",
    "predict_positions_nbody",
    "propagate",
    "propagate_states",
    "provisional_designations",
    "read_mpcorb",
    "select_near",
    "solve_kepler",
    "ss_object_rows",
    "ss_source_records",
    "state_to_elements",
    "unpack_designation",
    "unpack_epoch",
    "write_mpcorb",
]
