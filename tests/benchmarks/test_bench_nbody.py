"""Benchmark: refreshing 10⁴ main-belt orbits by one day and by 30 days with perturbations.

The nightly catalog refresh moves every MPCORB orbit (≈1.4·10⁶) to a new epoch with
:func:`alertprod.orbits.nbody.osculating_elements_at`. We time 10⁴ orbits on one core, then
extrapolate to 10⁶ orbits run as 100 Lambda invocations of 10⁴ orbits each, at 1,769 MB (one
vCPU, so the invocation lasts about the measured CPU time). Peer, in the same run: the
two-body refresh of the same orbits (:func:`alertprod.orbits.kepler.propagate` then the state
and back to elements, all numpy), which is what the catalog did before.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from alertprod.orbits import OrbitCatalog
from alertprod.orbits.kepler import Elements, elements_to_state, propagate, state_to_elements
from alertprod.orbits.nbody import DEFAULT_CHUNK_SIZE, osculating_elements_at

N_ORBITS = 10_000
N_CATALOG = 1_000_000
EPOCH_MJD_TT = 61000.0
RESULTS = Path(__file__).parent / "results" / "nbody.json"
#: AWS Lambda x86 on-demand price (us-east-1) and the memory that buys one full vCPU.
LAMBDA_USD_PER_GB_S = 0.0000166667
LAMBDA_USD_PER_REQUEST = 0.20 / 1e6
LAMBDA_MEMORY_GB = 1769 / 1024


def _main_belt(n: int, seed: int = 0) -> OrbitCatalog:
    rng = np.random.default_rng(seed)
    elements = Elements(rng.uniform(2.1, 3.3, n), rng.uniform(0, 0.3, n), rng.uniform(0, 30, n),
                        rng.uniform(0, 360, n), rng.uniform(0, 360, n), rng.uniform(0, 360, n),
                        np.full(n, EPOCH_MJD_TT))
    names = np.array([f"~{k:04d}" for k in range(n)])  # fake packed numbers, unique
    return OrbitCatalog.from_elements(elements, names, h=16.0, designation=names)


def _two_body_refresh(cat: OrbitCatalog, epoch: float):
    moved = propagate(cat.elements, epoch)
    return state_to_elements(elements_to_state(moved), epoch)


@pytest.mark.bench
def test_bench_nbody_refresh_of_1e4_orbits_by_1_and_30_days(best_of, one_core):
    cat = _main_belt(N_ORBITS)
    osculating_elements_at(cat[:10], EPOCH_MJD_TT + 1.0)  # warm astropy (ephemeris, tables)
    figures = {"orbits": N_ORBITS, "chunk_size": DEFAULT_CHUNK_SIZE, "refresh": {}}
    print(f"\nn-body refresh of {N_ORBITS} main-belt orbits, one core "
          f"(chunks of {DEFAULT_CHUNK_SIZE})")
    print(f"{'days':>5}{'n-body CPU s':>14}{'two-body CPU s':>16}{'ratio':>8}"
          f"{'1e6 CPU s':>11}{'Lambda $':>10}{'x 1e4-orbit calls':>19}")
    for days in (1.0, 30.0):
        epoch = EPOCH_MJD_TT + days
        nbody = best_of(lambda epoch=epoch: osculating_elements_at(cat, epoch), repeat=1)
        peer = best_of(lambda epoch=epoch: _two_body_refresh(cat, epoch), repeat=3)
        assert np.all(np.isfinite(nbody.result.a))
        # The two paths agree to the perturbations: arcseconds after a month, not degrees.
        new, old = nbody.result, peer.result
        drift_deg = np.abs((new.mean_anomaly + new.argperi + new.node - old.mean_anomaly_deg
                            - old.argperi_deg - old.node_deg + 180.0) % 360.0 - 180.0)
        assert np.median(drift_deg) < 0.05
        catalog_cpu_s = nbody.cpu_s * N_CATALOG / N_ORBITS
        gb_s = catalog_cpu_s * LAMBDA_MEMORY_GB
        invocations = N_CATALOG // N_ORBITS
        usd = gb_s * LAMBDA_USD_PER_GB_S + invocations * LAMBDA_USD_PER_REQUEST
        figures["refresh"][f"{days:g}_days"] = {
            "nbody_cpu_seconds": nbody.cpu_s,
            "nbody_wall_seconds": nbody.wall_s,
            "nbody_cpu_ms_per_orbit": 1e3 * nbody.cpu_s / N_ORBITS,
            "two_body_cpu_seconds": peer.cpu_s,
            "ratio_nbody_over_two_body": nbody.cpu_s / peer.cpu_s,
            "catalog_1e6_cpu_seconds": catalog_cpu_s,
            "lambda_1769mb_gb_seconds": gb_s,
            "lambda_invocations_of_1e4_orbits": invocations,
            "lambda_seconds_per_invocation": nbody.cpu_s,
            "lambda_usd": usd,
            "median_nbody_minus_two_body_mean_longitude_deg": float(np.median(drift_deg)),
        }
        print(f"{days:>5.0f}{nbody.cpu_s:>14.2f}{peer.cpu_s:>16.3f}"
              f"{nbody.cpu_s / peer.cpu_s:>8.0f}{catalog_cpu_s:>11.0f}{usd:>10.3f}"
              f"{invocations:>13d} of {nbody.cpu_s:.1f} s")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
