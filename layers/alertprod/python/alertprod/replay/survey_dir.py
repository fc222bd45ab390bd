"""Reading a survey directory laid out as ``alertprod simulate`` writes it.

``DIR/images/visits/{V:08d}/{D:03d}/{kind}.fits``, ``DIR/diasources/{V:08d}/{D:03d}.fits``,
``DIR/mpcorb.dat`` (optional). The time order of the uploads comes from each catalog's
``MJD-MID`` header card; a catalog whose time cannot be read (a broken upload) comes after
every dated one, and a file under ``diasources/`` at a key outside the contract is replayed
too, under its own path, so that ingest quarantines it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits

from alertprod.errors import ContractError
from alertprod.formats import diasource_key, image_key
from alertprod.formats.exposure import info_from_header
from alertprod.formats.layout import IMAGE_KINDS, parse_key

__all__ = ["CcdUpload", "VisitUpload", "scan_survey_dir"]


@dataclass
class CcdUpload:
    """The files of one (visit, detector) in a survey directory.

    ``visit`` and ``detector`` are None for a catalog whose path follows no key of the
    contract (``raw_key``): it is uploaded under that key all the same, and quarantined by the
    ingest function (``bad_key``) — a survey's stray file is refused on the record, not skipped.
    """

    visit: int | None
    detector: int | None
    catalog_path: Path
    image_paths: dict[str, Path] = field(default_factory=dict)
    raw_key: str | None = None

    @property
    def catalog_key(self) -> str:
        if self.raw_key is not None:
            return self.raw_key
        return diasource_key(self.visit, self.detector)

    def image_keys(self) -> dict[str, str]:
        return {k: image_key(self.visit, self.detector, k) for k in self.image_paths}


@dataclass
class VisitUpload:
    """All CCDs of one visit, with the visit's exposure midpoint (TAI MJD; +inf when no
    catalog of the visit states a readable one: uploaded after every dated visit).

    ``visit`` is -1 for a group of one stray catalog (a key outside the contract)."""

    visit: int
    mjd_tai: float
    ccds: list[CcdUpload]


def _mjd_of(path: Path) -> float:
    """The catalog's midpoint in TAI (its ``TIMESYS`` applied), +inf when unreadable."""
    try:
        with fits.open(path) as hdul:
            mjd = float(info_from_header(hdul[0].header, what=path.name).mjd_mid_tai)
    except Exception:  # a broken catalog still gets replayed (and quarantined) — order it last
        return math.inf
    return mjd if math.isfinite(mjd) else math.inf


def scan_survey_dir(root: str | Path) -> tuple[list[VisitUpload], Path | None]:
    """Visits of a survey directory in time order, and the orbit catalog path if present.

    Every file under ``diasources/`` is replayed: those at contract keys grouped by visit
    (the visit's time is the earliest its catalogs state), any other as a group of its own,
    uploaded under its path as key, for the ingest function to quarantine.

    Raises
    ------
    ContractError
        When ``root`` has no ``diasources/`` folder.
    """
    root = Path(root)
    cat_root = root / "diasources"
    if not cat_root.is_dir():
        raise ContractError("bad_key", f"{root} has no diasources/ folder (expected the simulate layout)")
    visits: dict[int, VisitUpload] = {}
    strays: list[VisitUpload] = []
    for path in sorted(p for p in cat_root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        try:
            parsed = parse_key(rel)
        except ContractError:
            parsed = None
        if parsed is None or parsed.kind != "diasources":
            strays.append(VisitUpload(-1, _mjd_of(path), [CcdUpload(None, None, path, raw_key=rel)]))
            continue
        ccd = CcdUpload(parsed.visit, parsed.detector, path)
        img_dir = root / "images" / "visits" / f"{parsed.visit:08d}" / f"{parsed.detector:03d}"
        for kind in IMAGE_KINDS:
            p = img_dir / f"{kind}.fits"
            if p.exists():
                ccd.image_paths[kind] = p
        vu = visits.setdefault(parsed.visit, VisitUpload(parsed.visit, math.inf, []))
        vu.mjd_tai = min(vu.mjd_tai, _mjd_of(path))
        vu.ccds.append(ccd)
    mpcorb = root / "mpcorb.dat"
    ordered = sorted([*visits.values(), *strays], key=lambda v: (v.mjd_tai, v.visit))
    return ordered, (mpcorb if mpcorb.exists() else None)
