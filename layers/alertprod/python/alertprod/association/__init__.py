"""Association of DiaSources with SSObjects and DiaObjects: candidates, scores, one-to-one assignment.

The per-CCD sequence (:func:`associate_sources`): keep the DiaObjects of the footprint padded by
~20″ (:func:`select_in_region`), match the DiaSources to predicted solar-system positions
(:func:`associate_solar_system`), then the remaining ones to DiaObjects (:func:`associate`).
Both steps are globally optimal one-to-one assignments; see docs/association.md.
"""

from alertprod.association.assignment import assign_one_to_one, no_match_cost
from alertprod.association.candidates import Candidates, find_candidates
from alertprod.association.dia_objects import (
    UNASSOCIATED_ID,
    AssociationResult,
    associate,
    match_positions,
)
from alertprod.association.geometry import in_region, select_in_region
from alertprod.association.scoring import (
    ERROR_FLOOR_ARCSEC,
    Positions,
    pair_scores,
    positions_from_table,
)
from alertprod.association.solar_system import (
    SolarSystemMatch,
    SourceAssociation,
    associate_solar_system,
    associate_sources,
    predicted_table,
)

__all__ = [
    "UNASSOCIATED_ID",
    "ERROR_FLOOR_ARCSEC",
    "AssociationResult",
    "SolarSystemMatch",
    "SourceAssociation",
    "Candidates",
    "Positions",
    "associate",
    "associate_solar_system",
    "associate_sources",
    "select_in_region",
    "in_region",
    "find_candidates",
    "pair_scores",
    "positions_from_table",
    "assign_one_to_one",
    "no_match_cost",
    "match_positions",
    "predicted_table",
]
