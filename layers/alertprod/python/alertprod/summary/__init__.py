"""DiaObject summaries: per-band light-curve statistics and mean positions (Rubin formulas).

:func:`summarize_objects` recomputes every summary column of the touched DiaObjects from their
DiaSource histories; :mod:`alertprod.summary.light_curve` holds the grouped statistics.
"""

from alertprod.summary.light_curve import band_statistics
from alertprod.summary.objects import (
    BANDS,
    EXTENDED_BAND_STATISTICS,
    SCHEMA_BAND_STATISTICS,
    summarize_objects,
)

__all__ = ["BANDS", "SCHEMA_BAND_STATISTICS", "EXTENDED_BAND_STATISTICS", "summarize_objects",
           "band_statistics"]
