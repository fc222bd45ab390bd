"""Reading a survey directory laid out as ``alertprod simulate`` writes it.

``DIR/images/visits/{V:08d}/{D:03d}/{kind}.fits``, ``DIR/diasources/{V:08d}/{D:03d}.fits``,
``DIR/mpcorb.dat`` (optional). The time order of the uploads comes from each catalog's
``MJD-MID`` header card.
"""

from __future__ import annotations

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
    """The files of one (visit, detector) in a survey directory."""

    visit: int
    detector: int
    catalog_path: Path
    image_paths: dict[str, Path] = field(default_factory=dict)

    @property
    def catalog_key(self) -> str:
        return diasource_key(self.visit, self.detector)

    def image_keys(self) -> dict[str, str]:
        return {k: image_key(self.visit, self.detector, k) for k in self.image_paths}


@dataclass
class VisitUpload:
    """All CCDs of one visit, with the visit's exposure midpoint."""

    visit: int
    mjd_tai: float
    ccds: list[CcdUpload]


def _mjd_of(path: Path) -> float:
    """The catalog's midpoint in TAI (its ``TIMESYS`` applied), +inf when unreadable."""
    try:
        with fits.open(path) as hdul:
            return float(info_from_header(hdul[0].header, what=path.name).mjd_mid_tai)
    except Exception:  # a broken catalog still gets replayed (and quarantined) — order it last
        return float("inf")


def scan_survey_dir(root: str | Path) -> tuple[list[VisitUpload], Path | None]:
    """Visits of a survey directory in time order, and the orbit catalog path if present.

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
    for path in sorted(cat_root.glob("*/*.fits")):
        rel = path.relative_to(root).as_posix()
        try:
            parsed = parse_key(rel)
        except ContractError:
            continue
        ccd = CcdUpload(parsed.visit, parsed.detector, path)
        img_dir = root / "images" / "visits" / f"{parsed.visit:08d}" / f"{parsed.detector:03d}"
        for kind in IMAGE_KINDS:
            p = img_dir / f"{kind}.fits"
            if p.exists():
                ccd.image_paths[kind] = p
        vu = visits.get(parsed.visit)
        if vu is None:
            vu = visits[parsed.visit] = VisitUpload(parsed.visit, _mjd_of(path), [])
        vu.ccds.append(ccd)
    mpcorb = root / "mpcorb.dat"
    ordered = sorted(visits.values(), key=lambda v: (v.mjd_tai, v.visit))
    return ordered, (mpcorb if mpcorb.exists() else None)
