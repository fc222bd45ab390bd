"""How elements.ecsv and ephemeris.ecsv were cut from adam_core's Horizons test data.

Run from a clone of https://github.com/B612-Asteroid-Institute/adam_core (MIT licence):

    python tests/data/horizons/extract.py /path/to/adam_core

Inputs (``adam_core/utils/helpers/data/`` at two commits, all produced by JPL Horizons through
astroquery by that repository's ``get_test_data.py``):

- ``elements_sun_ec.csv`` at 461087a5 (2023-10-10): heliocentric ecliptic J2000 osculating
  elements of 28 objects at one epoch each (TDB);
- ``ephemeris.csv`` at 461087a5 (epochs ± 30 days) and at f5bef7f0 (2023-09-13, ± 30 days
  around the epochs of that day's orbits, up to 440 days earlier): astrometric RA/Dec from
  Rubin (X05) and CTIO/DECam (W84), UTC.

Kept: 7 rows per object and arc (first, every 15th, last); 1I/'Oumuamua dropped (hyperbolic);
f5bef7f0 arcs dropped where they repeat the 461087a5 arc (same epoch) and for 2 Pallas and
6 Hebe (their orbits there were 20 years away from the elements' epoch).
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
from astropy.table import Table, vstack

HERE = Path(__file__).parent
DATA = "adam_core/utils/helpers/data"
ELEMENTS_COMMIT = "461087a591acc47985065e391580a1a0eef2bc09"
ARCS = {"461087a5": ELEMENTS_COMMIT, "f5bef7f0": "f5bef7f0181f56a635fff9419ddb2bf74f1fdee1"}
ROWS = [0, 15, 30, 45, 60, 75, 89]
DROP = {"1I/'Oumuamua (A/2017 U1)"}
DROP_ARC = {("f5bef7f0", "2 Pallas (A802 FA)"), ("f5bef7f0", "6 Hebe (A847 NA)")}


def read(repo: Path, commit: str, name: str) -> Table:
    text = subprocess.run(["git", "-C", str(repo), "show", f"{commit}:{DATA}/{name}"],
                          check=True, capture_output=True, text=True).stdout
    return Table.read(text, format="ascii.csv")


def main(repo: Path) -> None:
    elements = read(repo, ELEMENTS_COMMIT, "elements_sun_ec.csv")
    classes = read(repo, ELEMENTS_COMMIT, "objects.csv")["dynamical_class"]
    keep = [k for k, name in enumerate(elements["targetname"]) if name not in DROP]
    out = Table()
    out["designation"] = [str(n) for n in elements["targetname"][keep]]
    out["dynamical_class"] = [str(c) for c in classes[keep]]
    out["epoch_mjd_tdb"] = elements["mjd_tdb"][keep]
    for name, col, unit in (("a_au", "a", "AU"), ("e", "e", None), ("i_deg", "incl", "deg"),
                            ("node_deg", "Omega", "deg"), ("argperi_deg", "w", "deg"),
                            ("mean_anomaly_deg", "M", "deg")):
        out[name] = elements[col][keep]
        out[name].unit = unit
    out.meta["comments"] = [
        "JPL Horizons heliocentric ecliptic (IAU76/J2000) osculating elements, GM = k^2,",
        f"from adam_core {DATA}/elements_sun_ec.csv @ {ELEMENTS_COMMIT} (MIT).",
    ]
    out.write(HERE / "elements.ecsv", format="ascii.ecsv", overwrite=True)

    # Each object's Horizons name is matched on its provisional designation: names changed.
    key = {str(n).split("(")[-1]: str(n) for n in out["designation"]}
    parts, centres = [], {}
    for arc, commit in ARCS.items():
        eph = read(repo, commit, "ephemeris.csv")
        for target in dict.fromkeys(eph["targetname"]):
            name = key.get(str(target).split("(")[-1])
            if name is None or (arc, name) in DROP_ARC:
                continue
            rows = eph[eph["targetname"] == target][ROWS]
            centre = round(float(np.mean(rows["mjd_utc"])))
            if centres.setdefault(name, centre) == centre and arc != "461087a5":
                continue  # the same epoch in both runs: the same positions again
            part = Table()
            part["designation"] = [name] * len(rows)
            part["arc"] = [arc] * len(rows)
            part["mjd_utc"] = rows["mjd_utc"]
            part["observatory_code"] = [str(c) for c in rows["observatory_code"]]
            part["ra_deg"] = rows["RA"]
            part["dec_deg"] = rows["DEC"]
            part["delta_au"] = rows["delta"]
            parts.append(part)
    eph_out = vstack(parts)
    eph_out["mjd_utc"].unit = "d"
    for name in ("ra_deg", "dec_deg"):
        eph_out[name].unit = "deg"
    eph_out["delta_au"].unit = "AU"
    eph_out.meta["comments"] = [
        "JPL Horizons astrometric RA/Dec (ICRF, light-time corrected, no aberration) and",
        "observer distance, from adam_core " + DATA + "/ephemeris.csv at the commit in 'arc'",
        "(461087a5 or f5bef7f0, MIT). Observers: MPC codes X05 (Rubin), W84 (CTIO DECam).",
    ]
    eph_out.write(HERE / "ephemeris.ecsv", format="ascii.ecsv", overwrite=True)
    print(len(out), "orbits,", len(eph_out), "ephemeris rows", np.unique(eph_out["arc"]))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
