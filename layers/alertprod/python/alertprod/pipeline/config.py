"""Configuration of the nightly pipeline (typed, units in the field names)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PipelineConfig"]


@dataclass(frozen=True)
class PipelineConfig:
    """Tuning of the per-CCD processing.

    Attributes
    ----------
    max_dist_arcsec : float
        Association radius for DiaObjects and SSObjects (LSE-163: 1″).
    footprint_margin_arcsec : float
        Padding of the CCD footprint when loading DiaObjects and leasing sky cells, so that
        a source near the edge sees the objects just across it.
    history_months : int
        Months of DiaSource / DiaForcedSource history read back for summaries and alerts.
    lease_ttl_s : float
        Lifetime of a sky-cell lease; a crashed holder's lease expires after it.
    lease_wait_s : float
        How long to wait for cells held by a neighbouring CCD before failing (and retrying
        through the queue); below the function timeout (120 s), so the CCD fails on its own terms.
    cutout_size_pix : int or None
        Cutout side; None sizes it from the PSF and trail length.
    include_science_cutout : bool
        Add ``cutoutScience`` (the seed says alerts carry none by default).
    sso_margin_arcsec : float
        Padding of the footprint when selecting predicted asteroid positions.
    sso_radius_n_sigma : float
        An SSObject's radius widens beyond ``max_dist_arcsec`` by this many of its predicted
        position's 1-σ errors, from the orbit's uncertainty parameter U
        (:func:`alertprod.orbits.uncertainty.prediction_uncertainty`; docs/solar-system.md).
    sso_radius_cap_arcsec : float
        Largest SSObject radius, however uncertain the orbit.
    alert_chunk_size : int
        Alerts built, serialised, staged and published together: a CCD's memory holds one
        chunk of alerts at a time (~60 KB each with their cutouts), whatever its number of
        DiaSources (docs/formats.md "Limits").
    """

    max_dist_arcsec: float = 1.0
    footprint_margin_arcsec: float = 20.0
    history_months: int = 12
    lease_ttl_s: float = 120.0
    lease_wait_s: float = 90.0
    cutout_size_pix: int | None = None
    include_science_cutout: bool = False
    sso_margin_arcsec: float = 60.0
    sso_radius_n_sigma: float = 3.0
    sso_radius_cap_arcsec: float = 10.0
    alert_chunk_size: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.alert_chunk_size, int) or self.alert_chunk_size < 1:
            raise ValueError(f"alert_chunk_size: expected an integer >= 1, got "
                             f"{self.alert_chunk_size!r}")
