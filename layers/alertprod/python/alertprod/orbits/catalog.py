"""The orbit catalog: one row of osculating elements per known solar-system object.

Column names follow Rubin's ``mpc_orbits`` table (sdm_schemas ``apdb.yaml``) where it has one:
``designation`` (unpacked), ``packed_primary_provisional_designation`` is our
``packed_designation`` (which also holds packed permanent numbers), ``h``, ``g``, ``epoch_mjd``
(TT), ``mean_anomaly``, ``argperi``, ``node``, ``i``, ``e``, ``mean_motion``, ``a``, ``q``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
from astropy.table import Table

from alertprod.errors import OrbitError
from alertprod.orbits.designations import unpack_designation
from alertprod.orbits.kepler import GAUSS_K, Elements

__all__ = ["OrbitCatalog"]

_FLOAT_FIELDS = ("h", "g", "epoch_mjd", "mean_anomaly", "argperi", "node", "i", "e",
                 "mean_motion", "a")
_STR_FIELDS = ("packed_designation", "designation", "mpc_info", "last_obs")


def _ss_object_ids(packed: np.ndarray) -> np.ndarray:
    """Vectorised :func:`alertprod.ids.ss_object_id` (same values, ~100× faster on 1e5 rows).

    The ASCII bytes of each (stripped) designation read as a big-endian integer: NumPy's 'S8'
    stores them left-aligned, so shift right by the padding.
    """
    lengths = np.char.str_len(packed)
    if np.any((lengths < 1) | (lengths > 8)):
        bad = packed[(lengths < 1) | (lengths > 8)][0]
        raise OrbitError(f"packed_designation: {bad!r} must be 1-8 ASCII characters")
    try:
        raw = np.ascontiguousarray(packed.astype("S8"))
    except UnicodeEncodeError as exc:
        raise OrbitError("packed_designation: designations must be ASCII") from exc
    values = raw.view(">u8").astype(np.uint64)
    shift = (8 * (8 - lengths)).astype(np.uint64)
    return (values >> shift).astype(np.int64)


@dataclass
class OrbitCatalog:
    """Heliocentric ecliptic J2000 osculating elements of n objects (all arrays of shape (n,)).

    Attributes
    ----------
    packed_designation : ndarray of str
        MPC packed designation (``00433``, ``A0001``, ``K24A00A``), unique per object.
    h, g : ndarray of float
        Absolute magnitude H (mag) and slope parameter G of the H,G system.
    epoch_mjd : ndarray of float
        Epoch of the elements, TT MJD.
    mean_anomaly, argperi, node, i : ndarray of float
        Mean anomaly at epoch, argument of perihelion, longitude of the ascending node and
        inclination (deg), ecliptic and equinox J2000.
    e : ndarray of float
        Eccentricity (0 ≤ e < 1 for propagation).
    mean_motion : ndarray of float
        Mean daily motion n (deg/day), informative: propagation derives n from ``a``.
    a : ndarray of float
        Semi-major axis (au).
    designation : ndarray of str
        Readable designation (``(433) Eros``, ``2024 AB12``); unpacked from ``packed_designation``
        when not given.
    mpc_info, last_obs : ndarray of str
        MPCORB.DAT columns 104-166 (U, reference, observations, arc, rms, perturbers, computer,
        flags) and 195-202 (last observation, YYYYMMDD) kept verbatim; empty when unknown.
    """

    packed_designation: np.ndarray
    h: np.ndarray
    g: np.ndarray
    epoch_mjd: np.ndarray
    mean_anomaly: np.ndarray
    argperi: np.ndarray
    node: np.ndarray
    i: np.ndarray
    e: np.ndarray
    mean_motion: np.ndarray
    a: np.ndarray
    designation: np.ndarray | None = None
    mpc_info: np.ndarray | None = field(default=None, repr=False)
    last_obs: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.packed_designation = np.char.strip(
            np.atleast_1d(np.asarray(self.packed_designation, dtype=str)))
        n = self.packed_designation.shape[0]
        for name in _FLOAT_FIELDS:
            value = np.atleast_1d(np.asarray(getattr(self, name), dtype=float))
            if value.shape == (1,) and n != 1:
                value = np.full(n, value[0])
            if value.shape != (n,):
                raise OrbitError(f"{name}: shape {value.shape}, expected ({n},)")
            setattr(self, name, value)
        if self.designation is None:
            self.designation = np.array([unpack_designation(p) for p in self.packed_designation],
                                        dtype=str)
        for name in ("designation", "mpc_info", "last_obs"):
            value = getattr(self, name)
            value = np.full(n, "", dtype="<U1") if value is None else np.atleast_1d(
                np.asarray(value, dtype=str))
            if value.shape != (n,):
                raise OrbitError(f"{name}: shape {value.shape}, expected ({n},)")
            setattr(self, name, value)

    def __len__(self) -> int:
        return self.packed_designation.shape[0]

    def __getitem__(self, index) -> OrbitCatalog:
        """Rows selected by an int, slice, index array or boolean mask, as a new catalog."""
        if isinstance(index, (int, np.integer)):
            index = [index]
        return OrbitCatalog(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @property
    def H(self) -> np.ndarray:
        """Absolute magnitude (mag), alias of ``h``."""
        return self.h

    @property
    def G(self) -> np.ndarray:
        """Slope parameter, alias of ``g``."""
        return self.g

    @property
    def q(self) -> np.ndarray:
        """Perihelion distance a(1 − e) (au)."""
        return self.a * (1.0 - self.e)

    @property
    def ss_object_ids(self) -> np.ndarray:
        """int64 ``ssObjectId`` of each object (:func:`alertprod.ids.ss_object_id`), shape (n,)."""
        return _ss_object_ids(self.packed_designation)

    @property
    def elements(self) -> Elements:
        """The propagation view of the rows (:class:`alertprod.orbits.kepler.Elements`)."""
        return Elements(self.a, self.e, self.i, self.node, self.argperi, self.mean_anomaly,
                        self.epoch_mjd)

    @classmethod
    def from_elements(cls, elements: Elements, packed_designation, *, h=15.0, g=0.15,
                      designation=None) -> OrbitCatalog:
        """Catalog from propagation elements; ``mean_motion`` is k·a^−1.5 in deg/day."""
        a = np.atleast_1d(np.asarray(elements.a_au, dtype=float))
        return cls(packed_designation=packed_designation, h=h, g=g,
                   epoch_mjd=elements.epoch_mjd, mean_anomaly=elements.mean_anomaly_deg,
                   argperi=elements.argperi_deg, node=elements.node_deg, i=elements.i_deg,
                   e=elements.e, mean_motion=np.rad2deg(GAUSS_K / a**1.5), a=a,
                   designation=designation)

    @classmethod
    def concatenate(cls, catalogs: list[OrbitCatalog]) -> OrbitCatalog:
        """Rows of several catalogs, in order."""
        if not catalogs:
            raise OrbitError("catalogs: need at least one catalog")
        return cls(**{f.name: np.concatenate([getattr(c, f.name) for c in catalogs])
                      for f in fields(cls)})

    def to_table(self) -> Table:
        """astropy Table with Rubin ``mpc_orbits`` names plus ``ssObjectId`` and ``q``."""
        t = Table()
        t["ssObjectId"] = self.ss_object_ids
        t["packed_primary_provisional_designation"] = self.packed_designation
        t["designation"] = self.designation
        for name in _FLOAT_FIELDS:
            t[name] = getattr(self, name)
        t["q"] = self.q
        units = {"epoch_mjd": "d", "mean_anomaly": "deg", "argperi": "deg", "node": "deg",
                 "i": "deg", "mean_motion": "deg/d", "a": "AU", "q": "AU", "h": "mag"}
        for name, unit in units.items():
            t[name].unit = unit
        return t
