"""Reading the archive back: what a precovery re-creation needs beyond the image cache."""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from alertprod.apdb import ARCHIVE_INDEX_ORDER
from alertprod.archive.keys import archive_key
from alertprod.pixelization import pixel_of, polygon_contains

__all__ = ["open_archived", "find_archived_at"]


def open_archived(archive, visit: int, detector: int, kind: str) -> bytes:
    """The archived (tile-compressed) FITS bytes of one image; ``read_exposure`` parses them.

    Parameters
    ----------
    archive : BlobStore
        The archive bucket.
    visit, detector : int
        The CCD-visit.
    kind : {"science", "template"}
        Which image.

    Raises
    ------
    NotFoundError
        When the image was never archived.
    """
    return archive.get(archive_key(visit, detector, kind))


def find_archived_at(apdb, ra_deg: float, dec_deg: float, mjd_start: float,
                     mjd_end: float) -> Table:
    """Archived images whose footprint contains a position, midpoint in [start, end).

    One index cell (order :data:`ARCHIVE_INDEX_ORDER`), then the exact footprint test;
    columns as :meth:`Apdb.find_archived_exposures`.
    """
    cell = int(pixel_of(ra_deg, dec_deg, order=ARCHIVE_INDEX_ORDER))
    found = apdb.find_archived_exposures([cell], mjd_start, mjd_end)
    if not len(found):
        return found
    keep = np.array([polygon_contains(np.asarray(c), ra_deg, dec_deg) for c in found["corners"]])
    return found[keep]
