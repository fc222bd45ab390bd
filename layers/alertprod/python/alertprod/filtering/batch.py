"""A batch of alerts as columns with null masks: what a compiled filter evaluates over.

A column is extracted from the alert records the first time a filter asks for it and then kept,
so that 1,000 filters over one visit read each field once. Types follow the schema
(:mod:`alertprod.filtering.fields`): reals are float64 (Avro ``float`` fields rounded to 32 bits,
as serialisation does, so that a CCD's records filtered before encoding select exactly what a
broker decoding them would), integers int64, booleans bool, strings
numpy unicode (object arrays for the rare strings holding NUL characters, which fixed-width
unicode would truncate). A null, a missing field, a missing record (``diaObject`` of a solar-system
alert) and a non-finite real (NaN, ``±inf``) are all NULL: the mask is True and the value is a
placeholder (0, ``""``, False) that no result depends on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from alertprod.filtering.fields import FieldInfo, filter_fields

__all__ = ["AlertBatch", "Column"]

_EMPTY: Mapping[str, Any] = {}


class Column(NamedTuple):
    """One field over the batch: ``values`` (shape ``(n,)``) and ``null`` (bool, shape ``(n,)``)."""

    values: np.ndarray
    null: np.ndarray


def _column(info: FieldInfo, raw: Sequence[Any]) -> Column:
    n = len(raw)
    if info.type == "float":
        values = np.fromiter((np.nan if v is None else v for v in raw), np.float64, n)
        if info.avro_kind == "float":  # as serialised: records not yet encoded select alike
            with np.errstate(over="ignore"):
                values = values.astype(np.float32).astype(np.float64)
        null = ~np.isfinite(values)
        values[null] = 0.0
        return Column(values, null)
    null = np.fromiter((v is None for v in raw), bool, n)
    if info.type == "int":
        return Column(np.fromiter((0 if v is None else v for v in raw), np.int64, n), null)
    if info.type == "bool":
        return Column(np.fromiter((bool(v) for v in raw), bool, n), null)
    texts = ["" if v is None else str(v) for v in raw]
    # numpy's fixed-width unicode drops trailing NUL characters; keep such rare strings exact
    exact = any("\x00" in t for t in texts)
    values = np.array(texts, dtype=object if exact else str) if n else np.array([], str)
    return Column(values, null)


class AlertBatch:
    """Alerts as columns (one per field a filter uses), with null masks.

    Build it with :meth:`from_records` (decoded alert records, as fastavro gives them) or
    :meth:`from_columns` (arrays, e.g. a CCD's DiaSource table before its alerts are
    serialised). Columns are extracted on first use and cached.
    """

    def __init__(self, n: int, *, records: Sequence[Mapping[str, Any]] | None = None,
                 columns: Mapping[str, Column] | None = None):
        if n < 0:
            raise ValueError(f"n={n}: a batch cannot have a negative length")
        self._n = int(n)
        self._records = records
        self._columns: dict[str, Column] = dict(columns or {})
        self._cache: dict[Any, Any] = {}

    def __len__(self) -> int:
        return self._n

    @classmethod
    def from_records(cls, records: Sequence[Mapping[str, Any]], *,
                     fields: Sequence[str] | None = None) -> AlertBatch:
        """A batch over decoded alert records (``dict`` per alert, Rubin schema).

        Parameters
        ----------
        records : sequence of mapping
            Alert records: top-level fields, and ``diaSource``/``diaObject``/``ssSource``
            sub-records (a missing or None sub-record makes its fields NULL).
        fields : sequence of str, optional
            Fields to extract now (e.g. ``CompiledFilter.fields``); others are extracted when
            first used.
        """
        records = records if isinstance(records, (list, tuple)) else list(records)
        batch = cls(len(records), records=records)
        for path in fields or ():
            batch.column(path)
        return batch

    @classmethod
    def from_columns(cls, columns: Mapping[str, Any], n: int | None = None) -> AlertBatch:
        """A batch from arrays by field path (``{"diaSource.snr": array, ...}``).

        Parameters
        ----------
        columns : mapping of str to array-like
            Values per alert, shape ``(n,)``; numpy masked arrays (astropy ``MaskedColumn``)
            give their mask as nulls, and None entries of object arrays are nulls. Fields not
            given are NULL for every alert.
        n : int, optional
            Number of alerts (default: the length of the columns).
        """
        fields = filter_fields()
        lengths = {len(v) for v in columns.values()}
        if n is None:
            if len(lengths) != 1:
                raise ValueError(f"columns have lengths {sorted(lengths)}: give n or equal lengths")
            n = lengths.pop()
        elif lengths - {n}:
            raise ValueError(f"columns have lengths {sorted(lengths)}, not n={n}")
        built = {}
        for path, data in columns.items():
            info = fields.get(path)
            if info is None:
                raise ValueError(f"columns: {path!r} is not a filterable field")
            mask = np.ma.getmaskarray(data) if np.ma.isMaskedArray(data) else np.zeros(n, bool)
            raw = [None if m else v for v, m in zip(np.asarray(data).tolist(), mask, strict=True)]
            built[path] = _column(info, raw)
        return cls(n, columns=built)

    def column(self, path: str) -> Column:
        """The column of field ``path`` (extracted and cached on first use)."""
        col = self._columns.get(path)
        if col is not None:
            return col
        info = filter_fields().get(path)
        if info is None:
            raise ValueError(f"path={path!r} is not a filterable field (see filter_fields())")
        if self._records is None:
            col = Column(_placeholder(info, self._n), np.ones(self._n, bool))
        elif info.record is None:
            col = _column(info, [r.get(info.name) for r in self._records])
        else:
            rec, name = info.record, info.name
            col = _column(info, [(r.get(rec) or _EMPTY).get(name) for r in self._records])
        self._columns[path] = col
        return col

    def unit_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the ``diaSource`` positions, shape ``(n, 3)``, and their null mask."""
        key = "xyz"
        if key not in self._cache:
            ra, dec = self.column("diaSource.ra"), self.column("diaSource.dec")
            self._cache[key] = (radec_to_xyz(ra.values, dec.values), ra.null | dec.null)
        return self._cache[key]

    def cached(self, key: Any, compute) -> Any:
        """Per-batch memo for derived quantities (watchlist membership, ...): ``compute()`` once."""
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def dia_source_ids(self) -> np.ndarray:
        """``diaSourceId`` of every alert (int64)."""
        return self.column("diaSourceId").values


def _placeholder(info: FieldInfo, n: int) -> np.ndarray:
    return np.zeros(n, {"float": np.float64, "int": np.int64, "bool": bool, "str": "<U1"}[info.type])


def radec_to_xyz(ra_deg: Any, dec_deg: Any) -> np.ndarray:
    """Unit vectors, shape ``(n, 3)``, of positions in degrees."""
    ra, dec = np.radians(ra_deg), np.radians(dec_deg)
    cos_dec = np.cos(dec)
    return np.stack([cos_dec * np.cos(ra), cos_dec * np.sin(ra), np.sin(dec)], axis=-1)
