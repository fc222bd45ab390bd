"""Inputs of the night report: the exported alerts, ``summary.json``, ``quarantine.json`` and tables.

Everything here tolerates missing files and missing fields, because a report of a partial or
failed night is exactly when one is wanted: an absent input becomes an empty value, never an error.
Alerts are read in one pass; only the ``max_full`` most significant keep their cutouts and history
(a bounded heap), so memory stays flat however many alerts the night published.
"""

from __future__ import annotations

import heapq
import io
import json
import math
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import fastavro
import numpy as np
from astropy.io import fits
from astropy.table import Table

from alertprod.errors import AlertSchemaError, ConfigError

__all__ = [
    "AlertRow",
    "AlertSet",
    "alert_row",
    "iter_alert_files",
    "read_alerts",
    "load_summary",
    "load_quarantine",
    "load_table",
    "cutout_image",
]


class AlertRow(NamedTuple):
    """One line of the alert list: what the browsable table shows of an alert.

    Attributes
    ----------
    diaSourceId : int
        Id of the alert (its triggering DiaSource).
    visit, detector : int
        Where the DiaSource was detected.
    midpointMjdTai : float
        Time of the exposure midpoint, TAI MJD.
    band : str
        Filter band (``"u"`` .. ``"y"``; ``""`` when absent).
    ra, dec : float
        Position, degrees.
    snr : float
        Signal-to-noise ratio of the detection (``abs(psfFlux/psfFluxErr)`` when ``snr`` is null).
    psfFlux : float
        PSF flux on the difference image, nJy.
    reliability : float
        Real/bogus score (NaN when null).
    is_new : bool
        The alert's DiaObject was created by this DiaSource.
    is_sso : bool
        The DiaSource is associated with a known solar-system object.
    source_file : str
        Name of the ``.avro`` file it came from.
    """

    diaSourceId: int
    visit: int
    detector: int
    midpointMjdTai: float
    band: str
    ra: float
    dec: float
    snr: float
    psfFlux: float
    reliability: float
    is_new: bool
    is_sso: bool
    source_file: str

    @property
    def kind(self) -> str:
        """``"sso"``, ``"new"`` or ``"update"``: the marker class of the sky map."""
        return "sso" if self.is_sso else ("new" if self.is_new else "update")


class AlertSet(NamedTuple):
    """The alerts of a night.

    Attributes
    ----------
    rows : list of AlertRow
        Every alert read, most significant (largest ``snr``) first.
    full : dict
        ``diaSourceId`` -> full alert record, for the ``max_full`` most significant alerts only.
    unreadable : list of (str, str)
        Files that could not be decoded: (file name, error message).
    """

    rows: list[AlertRow]
    full: dict[int, dict[str, Any]]
    unreadable: list[tuple[str, str]]


def _float(value: Any) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return math.nan
    return x


def _int(value: Any, default: int = -1) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def alert_row(alert: Mapping[str, Any], source_file: str = "") -> AlertRow:
    """The :class:`AlertRow` of one alert record (missing fields become NaN/-1/"")."""
    src = alert.get("diaSource") or {}
    obj = alert.get("diaObject") or {}
    sid = _int(alert.get("diaSourceId", src.get("diaSourceId")))
    snr = _float(src.get("snr"))
    flux, err = _float(src.get("psfFlux")), _float(src.get("psfFluxErr"))
    if not math.isfinite(snr) and math.isfinite(flux) and err > 0:
        snr = flux / err
    # A new DiaObject takes the id of the DiaSource that creates it (alertprod.ids); schema
    # versions without that convention still show nDiaSources == 1 for a first detection.
    is_new = bool(obj) and (_int(obj.get("diaObjectId")) == sid
                            or _int(obj.get("nDiaSources"), 0) == 1)
    is_sso = alert.get("ssSource") is not None or src.get("ssObjectId") not in (None, 0)
    return AlertRow(
        diaSourceId=sid, visit=_int(src.get("visit")), detector=_int(src.get("detector")),
        midpointMjdTai=_float(src.get("midpointMjdTai")), band=str(src.get("band") or ""),
        ra=_float(src.get("ra")), dec=_float(src.get("dec")), snr=snr, psfFlux=flux,
        reliability=_float(src.get("reliability")), is_new=is_new, is_sso=bool(is_sso),
        source_file=source_file,
    )


def _significance(row: AlertRow) -> float:
    return abs(row.snr) if math.isfinite(row.snr) else -1.0


def iter_alert_files(alert_dir: Path) -> Iterator[tuple[str, dict[str, Any] | None, str]]:
    """Yield ``(file name, alert record or None, error message)`` for every ``*.avro`` file."""
    for path in sorted(Path(alert_dir).glob("*.avro")):
        try:
            with path.open("rb") as fh:
                for record in fastavro.reader(fh):
                    yield path.name, record, ""
        except (OSError, ValueError, EOFError, TypeError, IndexError, AlertSchemaError) as exc:
            yield path.name, None, f"{type(exc).__name__}: {exc}"


def read_alerts(alert_dir: Path, *, max_full: int = 500) -> AlertSet:
    """Read every alert of ``alert_dir/*.avro``, keeping the ``max_full`` most significant whole.

    Parameters
    ----------
    alert_dir : Path
        Directory of Avro object-container files (absent: no alerts).
    max_full : int
        How many full records (cutouts, history) to keep, by decreasing ``|snr|``.

    Returns
    -------
    AlertSet
    """
    if max_full < 0:
        raise ConfigError(f"max_full must be >= 0, got {max_full}")
    rows: list[AlertRow] = []
    heap: list[tuple[float, int, dict[str, Any]]] = []  # min-heap on significance
    unreadable: list[tuple[str, str]] = []
    if Path(alert_dir).is_dir():
        for counter, (name, record, error) in enumerate(iter_alert_files(Path(alert_dir))):
            if record is None:
                unreadable.append((name, error))
                continue
            row = alert_row(record, name)
            rows.append(row)
            if max_full == 0:
                continue
            item = (_significance(row), -counter, record)
            if len(heap) < max_full:
                heapq.heappush(heap, item)
            elif item[:2] > heap[0][:2]:
                heapq.heapreplace(heap, item)
    rows.sort(key=lambda r: (-_significance(r), r.midpointMjdTai, r.diaSourceId))
    full = {alert_row(rec).diaSourceId: rec for _, _, rec in heap}
    return AlertSet(rows=rows, full=full, unreadable=unreadable)


def load_summary(path: Path) -> dict[str, Any]:
    """``summary.json`` as a dict (``{}`` when absent or not a JSON object)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load_quarantine(path: Path) -> list[dict[str, Any]]:
    """``quarantine.json`` as a list of dicts (``[]`` when absent; non-dict entries wrapped)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return []
    if isinstance(data, dict):
        data = data.get("quarantined", data.get("items", [data]))
    if not isinstance(data, list):
        return []
    return [d if isinstance(d, dict) else {"key": "", "reason": "", "detail": str(d)} for d in data]


def load_table(path: Path) -> Table | None:
    """A FITS binary table (the first table HDU), or None when absent or unreadable."""
    try:
        return Table.read(path, format="fits")
    except (OSError, ValueError, TypeError):
        return None


def cutout_image(blob: bytes | None) -> np.ndarray | None:
    """The pixel array of a FITS cutout: the ``IMAGE`` extension, else the first HDU with data.

    Parameters
    ----------
    blob : bytes or None
        The FITS file as bytes, as alert packets carry it.

    Returns
    -------
    numpy.ndarray of float, shape (ny, nx), or None
        None when the cutout is absent or not a decodable 2-d FITS image.
    """
    if not blob:
        return None
    try:
        with fits.open(io.BytesIO(blob), memmap=False) as hdus:
            hdu = hdus["IMAGE"] if "IMAGE" in hdus else next(
                (h for h in hdus if h.data is not None and np.ndim(h.data) >= 2), None)
            if hdu is None or hdu.data is None:
                return None
            data = np.asarray(hdu.data, dtype=float)
    except (OSError, ValueError, TypeError, KeyError, IndexError):
        return None
    while data.ndim > 2:
        data = data[0]
    return data if data.ndim == 2 and data.size else None
