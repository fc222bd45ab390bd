"""Precovery work units: one cached exposure and the new DiaObjects it covers.

A unit travels through the precovery queue as JSON; it is validated on receipt so that a bad
message fails alone (and reaches the dead-letter queue) without touching anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from alertprod.errors import PrecoveryError

__all__ = ["PrecoveryUnit", "unit_from_message", "unit_to_message", "UNIT_SCHEMA"]

UNIT_SCHEMA = "alertprod.precovery-unit/1"


@dataclass(frozen=True)
class PrecoveryUnit:
    """Forced photometry of several objects on one cached exposure.

    Attributes
    ----------
    visit, detector : int
        The exposure.
    band : str
        Its band.
    mjd_tai : float
        Its exposure midpoint (TAI MJD).
    dia_object_ids : tuple of int
        Objects to measure.
    ra_deg, dec_deg : tuple of float
        Their positions (degrees).
    night_mjd_tai : float
        Start of the night whose new objects this unit serves (for the ledger and logs).
    kinds : tuple of str or None
        Image kinds cached for the exposure (None: unknown, as in messages of earlier
        releases; the worker then looks for every kind).
    """

    visit: int
    detector: int
    band: str
    mjd_tai: float
    dia_object_ids: tuple[int, ...]
    ra_deg: tuple[float, ...]
    dec_deg: tuple[float, ...]
    night_mjd_tai: float = float("nan")
    kinds: tuple[str, ...] | None = None

    def __post_init__(self):
        n = len(self.dia_object_ids)
        if len(self.ra_deg) != n or len(self.dec_deg) != n:
            raise PrecoveryError("unit: dia_object_ids, ra_deg and dec_deg differ in length")
        ra, dec = np.asarray(self.ra_deg, float), np.asarray(self.dec_deg, float)
        if n and (not np.all(np.isfinite(ra)) or np.any((ra < 0) | (ra >= 360)) or
                  not np.all(np.isfinite(dec)) or np.any(np.abs(dec) > 90)):
            raise PrecoveryError("unit: positions out of range")
        if self.band not in tuple("ugrizy"):
            raise PrecoveryError(f"unit: band {self.band!r} is not one of u g r i z y")


def unit_to_message(unit: PrecoveryUnit) -> str:
    """JSON message body of a unit."""
    return json.dumps({
        "schema": UNIT_SCHEMA, "visit": unit.visit, "detector": unit.detector, "band": unit.band,
        "mjdTai": unit.mjd_tai, "nightMjdTai": unit.night_mjd_tai,
        "diaObjectId": list(map(int, unit.dia_object_ids)),
        "ra": list(map(float, unit.ra_deg)), "dec": list(map(float, unit.dec_deg)),
        **({} if unit.kinds is None else {"kinds": list(unit.kinds)}),
    })


def unit_from_message(body: str) -> PrecoveryUnit:
    """Parse and validate a unit message.

    Raises
    ------
    PrecoveryError
        When the body is not a unit message.
    """
    try:
        d = json.loads(body)
        if d.get("schema") != UNIT_SCHEMA:
            raise PrecoveryError(f"unit message schema is {d.get('schema')!r}, not {UNIT_SCHEMA}")
        return PrecoveryUnit(int(d["visit"]), int(d["detector"]), str(d["band"]), float(d["mjdTai"]),
                             tuple(int(i) for i in d["diaObjectId"]), tuple(float(r) for r in d["ra"]),
                             tuple(float(x) for x in d["dec"]), float(d.get("nightMjdTai", "nan")),
                             None if d.get("kinds") is None else tuple(str(k) for k in d["kinds"]))
    except PrecoveryError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise PrecoveryError(f"malformed precovery unit message: {exc}") from exc
