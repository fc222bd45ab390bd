"""One night's refreshed orbits: elements osculating at the night's epoch, and their bytes.

Per object of the base catalog (keyed by ``ssObjectId``) a night's catalog holds the six
perturbed osculating elements at the night's epoch in float64 — not MPCORB.DAT text, whose
rounding (10⁻⁵°, 10⁻⁷ au) alone moves a prediction by up to 0.1″ (docs/solar-system.md,
"Error budget") — the two-body drift measured over the night, and the close-approach flag of
the NEO rule (:mod:`alertprod.orbitrefresh.integrate`). Everything else (designations, H, G,
the MPC's bookkeeping) stays in the base catalog, which the night names by its version.

Bytes (:func:`encode_night_elements`): a magic line, one JSON header line, then each column
byte-shuffled (all first bytes of the column, then all second bytes, ...), so that the
exponent bytes of the float64 columns sit together; the APDB compresses what it stores.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from alertprod.errors import OrbitError
from alertprod.orbits import OrbitCatalog
from alertprod.orbits.kepler import GAUSS_K

__all__ = ["MAGIC", "NightCatalog", "NightElements", "decode_night_elements",
           "encode_night_elements", "night_catalog"]

MAGIC = b"alertprod.orbit-night/1\n"
#: (attribute, little-endian dtype) of the stored columns, in their order in the bytes.
_COLUMNS = (("ss_object_id", "<i8"), ("a", "<f8"), ("e", "<f8"), ("i", "<f8"), ("node", "<f8"),
            ("argperi", "<f8"), ("mean_anomaly", "<f8"), ("drift_arcsec", "<f4"),
            ("close_approach", "u1"))
_ELEMENTS = ("a", "e", "i", "node", "argperi", "mean_anomaly")


@dataclass(frozen=True)
class NightElements:
    """Osculating elements of n objects at one night's epoch (arrays of shape (n,)).

    Attributes
    ----------
    night_mjd : int
        The night (:func:`~alertprod.orbitrefresh.nights.night_of`).
    epoch_mjd_tt : float
        Epoch of the elements (TT MJD).
    base_version : str
        Version of the base catalog they were integrated from.
    ss_object_id : ndarray of int64
        The objects.
    a, e, i, node, argperi, mean_anomaly : ndarray of float64
        Heliocentric ecliptic J2000 elements (au, deg) osculating at ``epoch_mjd_tt``; NaN
        ``a`` and ``e`` for an orbit that could not be integrated or became unbound.
    drift_arcsec : ndarray of float32
        Largest offset, seen from the geocentre, between the two-body prediction from these
        elements and the n-body one at the night's edges (epoch ± 0.5 d).
    close_approach : ndarray of bool
        Objects whose drift exceeds the refresh's limit: integrated directly to each exposure.
    meta : dict
        JSON-ready facts of the refresh (CPU seconds, chunks, the drift limit, ...).
    """

    night_mjd: int
    epoch_mjd_tt: float
    base_version: str
    ss_object_id: np.ndarray
    a: np.ndarray
    e: np.ndarray
    i: np.ndarray
    node: np.ndarray
    argperi: np.ndarray
    mean_anomaly: np.ndarray
    drift_arcsec: np.ndarray
    close_approach: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = np.shape(self.ss_object_id)[0] if np.ndim(self.ss_object_id) == 1 else -1
        for name, dtype in _COLUMNS:
            value = np.asarray(getattr(self, name), dtype=np.dtype(dtype).newbyteorder("="))
            if value.shape != (n,):
                raise OrbitError(f"{name}: shape {value.shape}, expected ({max(n, 0)},)")
            object.__setattr__(self, name, value)
        object.__setattr__(self, "close_approach", self.close_approach.astype(bool))
        object.__setattr__(self, "night_mjd", int(self.night_mjd))
        object.__setattr__(self, "epoch_mjd_tt", float(self.epoch_mjd_tt))

    def __len__(self) -> int:
        return int(self.ss_object_id.shape[0])

    @classmethod
    def from_catalog(cls, osculating: OrbitCatalog, *, night_mjd: int, base_version: str,
                     drift_arcsec: np.ndarray, close_approach: np.ndarray,
                     meta: dict[str, Any] | None = None) -> NightElements:
        """The elements of a catalog that osculates at the night's epoch (one epoch for all)."""
        epochs = np.unique(osculating.epoch_mjd)
        if epochs.size > 1:
            raise OrbitError(f"osculating: one epoch expected, got {epochs.size}")
        epoch = float(epochs[0]) if epochs.size else float("nan")
        return cls(night_mjd, epoch, base_version, osculating.ss_object_ids,
                   *(getattr(osculating, name) for name in _ELEMENTS),
                   drift_arcsec=drift_arcsec, close_approach=close_approach, meta=dict(meta or {}))

    @classmethod
    def concatenate(cls, parts: list[NightElements], **changes: Any) -> NightElements:
        """Rows of several parts of one night, in order (``changes`` replace any field)."""
        if not parts:
            raise OrbitError("parts: need at least one part")
        first = parts[0]
        for p in parts[1:]:
            if (p.night_mjd, p.base_version) != (first.night_mjd, first.base_version):
                raise OrbitError("parts: of different nights or base catalogs")
        columns = {name: np.concatenate([getattr(p, name) for p in parts]) for name, _ in _COLUMNS}
        epochs = [p.epoch_mjd_tt for p in parts if len(p)]
        epoch = epochs[0] if epochs else first.epoch_mjd_tt
        return dataclasses.replace(first, **{**columns, "epoch_mjd_tt": epoch, **changes})


def encode_night_elements(night: NightElements) -> bytes:
    """The bytes a night's catalog is stored as (see the module notes)."""
    header = {"nightMjd": night.night_mjd, "epochMjdTt": night.epoch_mjd_tt,
              "baseVersion": night.base_version, "rows": len(night),
              "columns": [[name, dtype] for name, dtype in _COLUMNS], "meta": night.meta}
    parts = [MAGIC, json.dumps(header, sort_keys=True).encode(), b"\n"]
    for name, dtype in _COLUMNS:
        column = np.ascontiguousarray(getattr(night, name), dtype=dtype)
        parts.append(column.view(np.uint8).reshape(-1, column.itemsize).T.tobytes())
    return b"".join(parts)


def decode_night_elements(data: bytes) -> NightElements:
    """Read the bytes of :func:`encode_night_elements`.

    Raises
    ------
    OrbitError
        When the bytes are not a night's catalog of this format.
    """
    data = bytes(data)
    if not data.startswith(MAGIC):
        raise OrbitError("data: not a night's orbit catalog (magic line missing)")
    end = data.find(b"\n", len(MAGIC))
    try:
        header = json.loads(data[len(MAGIC):end])
        n = int(header["rows"])
        if [tuple(c) for c in header["columns"]] != list(_COLUMNS):
            raise OrbitError(f"data: columns {header['columns']} are not {list(_COLUMNS)}")
    except (ValueError, KeyError, TypeError) as exc:
        raise OrbitError(f"data: malformed header of a night's catalog: {exc}") from exc
    body, offset, columns = memoryview(data)[end + 1:], 0, {}
    for name, dtype in _COLUMNS:
        size = np.dtype(dtype).itemsize
        if offset + n * size > len(body):
            raise OrbitError(f"data: truncated in column {name}")
        shuffled = np.frombuffer(body[offset:offset + n * size], np.uint8).reshape(size, n)
        columns[name] = np.ascontiguousarray(shuffled.T).view(dtype).reshape(n)
        offset += n * size
    if offset != len(body):
        raise OrbitError(f"data: {len(body) - offset} bytes after the last column")
    return NightElements(header["nightMjd"], header["epochMjdTt"], str(header["baseVersion"]),
                         **columns, meta=dict(header.get("meta") or {}))


class NightCatalog(NamedTuple):
    """The base catalog with one night's elements put in.

    Attributes
    ----------
    catalog : OrbitCatalog
        Rows of the base catalog (same order, designations, H, G); elements and epoch from the
        night where it has the object.
    close_approach : ndarray of bool, shape (n,)
        Rows the night flags as close approachers.
    missing : int
        Rows the night does not have (they keep the base elements).
    """

    catalog: OrbitCatalog
    close_approach: np.ndarray
    missing: int


def night_catalog(base: OrbitCatalog, night: NightElements) -> NightCatalog:
    """Put a night's elements into the rows of the base catalog, matched by ``ssObjectId``."""
    ids = base.ss_object_ids
    order = np.argsort(night.ss_object_id, kind="stable")
    sorted_ids = night.ss_object_id[order]
    found = np.zeros(ids.shape, bool)
    src = np.zeros(ids.shape, np.int64)
    if sorted_ids.size:
        pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
        found = sorted_ids[pos] == ids
        src = order[pos]
    columns = {}
    for name in _ELEMENTS:
        column = np.array(getattr(base, name), dtype=float)
        column[found] = getattr(night, name)[src[found]]
        columns[name] = column
    epoch = np.array(base.epoch_mjd, dtype=float)
    epoch[found] = night.epoch_mjd_tt
    with np.errstate(invalid="ignore"):
        mean_motion = np.where(found, np.rad2deg(GAUSS_K / columns["a"] ** 1.5), base.mean_motion)
    catalog = dataclasses.replace(base, epoch_mjd=epoch, mean_motion=mean_motion, **columns)
    close = np.zeros(ids.shape, bool)
    close[found] = night.close_approach[src[found]]
    return NightCatalog(catalog, close, int(np.sum(~found)))
