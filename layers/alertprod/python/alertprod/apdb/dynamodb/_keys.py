"""Item keys of the single-table Level 1 database (``pk`` S / ``sk`` S).

Every hot access path is a key lookup (GetItem / BatchGetItem) on keys computed here; see
docs/apdb.md for the table design. Numbers in keys are written in fixed width where the sort
key order matters.
"""

from __future__ import annotations

from alertprod.apdb._layout import NEW_OBJECT_SHARDS

__all__ = [
    "Key", "key", "obj_last", "obj_version", "pixel_index", "history", "new_objects",
    "new_objects_of_ccd", "new_objects_partition",
    "NEW_OBJECT_SHARDS", "lease", "ccd_record", "alert_mark", "image_index", "archive_index", "ss_object",
    "orbit_pointer", "orbit_chunk", "orbit_night_pointer", "orbit_night_chunk", "source_attr",
    "forced_attr", "new_object_attr", "format_mjd", "split_key", "part", "precovery_run",
    "precovery_unit", "precovery_objects", "PRECOVERY_UNIT_PREFIX",
]

#: Sort-key prefix of the per-unit markers of a precovery run.
PRECOVERY_UNIT_PREFIX = "U#"

Key = dict[str, dict[str, str]]



def key(pk: str, sk: str) -> Key:
    """A DynamoDB key in the low-level client's attribute-value format."""
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def split_key(k: Key) -> tuple[str, str]:
    """``(pk, sk)`` strings of a key or item."""
    return k["pk"]["S"], k["sk"]["S"]


def format_mjd(mjd_tai: float) -> str:
    """Fixed-width, sortable text of a TAI MJD (ns resolution is ~1e-9 d; we keep 1e-9 d)."""
    return f"{float(mjd_tai):016.9f}"


def obj_last(dia_object_id: int) -> Key:
    """The latest version of a DiaObject (DiaObjectLast plus the full DiaObject row)."""
    return key(f"OBJ#{int(dia_object_id)}", "LAST")


def obj_version(dia_object_id: int, validity_start_mjd_tai: float) -> Key:
    """One version of a DiaObject, keyed like Rubin's (diaObjectId, validityStartMjdTai)."""
    return key(f"OBJ#{int(dia_object_id)}", f"V#{format_mjd(validity_start_mjd_tai)}")


def pixel_index(pixel: int) -> Key:
    """The set of diaObjectIds whose latest position is in one HEALPix (order 10) pixel."""
    return key(f"PIX#{int(pixel)}", "OBJ")


def history(dia_object_id: int, bucket: int, *, ss: bool = False) -> Key:
    """DiaSources and DiaForcedSources of one object in one 30-day bucket.

    ``ss=True`` keys the DiaSources associated with an SSObject (``ssObjectId``).
    """
    prefix = "SSHIST" if ss else "HIST"
    return key(f"{prefix}#{int(dia_object_id)}", f"T#{int(bucket):06d}")


def new_objects(day: int, shard: int) -> Key:
    """DiaObjects created on one MJD day (floor of the TAI MJD), one of the shards (the former
    layout, written inside the CCD transactions; read, never written)."""
    return key(f"NEWOBJ#{int(day)}", f"S#{int(shard):03d}")


def new_objects_of_ccd(day: int, visit: int, detector: int, chunk: int) -> Key:
    """The DiaObjects one CCD created on one MJD day (one item per 10,000), written once its
    transactions have committed: no item is shared between CCDs."""
    return key(new_objects_partition(day), f"C#{int(visit):08d}#{int(detector):03d}#{int(chunk):03d}")


def new_objects_partition(day: int) -> str:
    """The partition holding every new-object item of one MJD day (both layouts)."""
    return f"NEWOBJ#{int(day)}"


def lease(cell: int) -> Key:
    """The lease (lock with fencing token) of one coarse sky cell."""
    return key(f"LEASE#{int(cell)}", "LEASE")


def ccd_record(visit: int, detector: int) -> Key:
    """The processing ledger record of one CCD."""
    return key(f"CCD#{int(visit):08d}#{int(detector):03d}", "LEDGER")


def alert_mark(dia_source_id: int) -> Key:
    """The publish mark of one alert."""
    return key(f"ALERT#{int(dia_source_id)}", "MARK")


def image_index(pixel: int, bucket: int) -> Key:
    """The cached exposures overlapping one (order-8) pixel within one 30-day bucket."""
    return key(f"IMG#{int(pixel)}", f"T#{int(bucket):06d}")


def archive_index(pixel: int, day: int) -> Key:
    """The archived images overlapping one (order-9) cell whose midpoint falls on one MJD day."""
    return key(f"ARC#{int(pixel)}", f"D#{int(day):06d}")


def ss_object(ss_object_id: int) -> Key:
    """One SSObject row."""
    return key(f"SSOBJ#{int(ss_object_id)}", "ROW")


def orbit_pointer() -> Key:
    """The pointer to the current orbit catalog version."""
    return key("ORBITS", "CURRENT")


def orbit_chunk(version: str, index: int) -> Key:
    """One chunk of one orbit catalog version."""
    return key("ORBITS", f"V#{version}#{int(index):05d}")


def orbit_night_pointer(night_mjd: int) -> Key:
    """The pointer to one night's refreshed orbit catalog."""
    return key("ORBITS", f"NIGHT#{int(night_mjd):06d}")


def orbit_night_chunk(version: str, index: int) -> Key:
    """One chunk of a night's refreshed catalog: a partition key per chunk, so that the
    containers that load it at the start of a night spread their reads over partitions."""
    return key(f"ORBITNIGHT#{version}#{int(index):05d}", "CHUNK")


def source_attr(dia_source_id: int) -> str:
    """Attribute name of one packed DiaSource row in a history item."""
    return f"s{int(dia_source_id)}"


def forced_attr(dia_forced_source_id: int) -> str:
    """Attribute name of one packed DiaForcedSource row in a history item."""
    return f"f{int(dia_forced_source_id)}"


def new_object_attr(dia_object_id: int) -> str:
    """Attribute name of one new DiaObject in a per-night item."""
    return f"o{int(dia_object_id)}"


def part(head: Key, index: int) -> Key:
    """Continuation part ``index`` (1, 2, ...) of an item that spilled (docs/apdb.md)."""
    pk, sk = split_key(head)
    return key(pk, f"{sk}#P{int(index):04d}")


def precovery_run(run_id: str) -> Key:
    """The record of one precovery run: size, counter, finalisation flag, object-id pointer."""
    return key(f"PRECOVERY#{run_id}", "RUN")


def precovery_unit(run_id: str, unit_key: str) -> Key:
    """The marker of one completed unit of a precovery run."""
    return key(f"PRECOVERY#{run_id}", f"{PRECOVERY_UNIT_PREFIX}{unit_key}")


def precovery_objects(run_id: str, digest: str, index: int) -> Key:
    """One chunk of a precovery run's diaObjectIds (named by the digest of all of them)."""
    return key(f"PRECOVERY#{run_id}", f"O#{digest}#{int(index):05d}")
