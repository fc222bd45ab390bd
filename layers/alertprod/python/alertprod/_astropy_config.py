"""Offline astropy: the bundled Earth-orientation and leap-second tables, never a download.

Importing this module (``alertprod.orbits`` and ``alertprod.sky`` do) sets astropy's IERS
configuration for the process: no automatic download, no expiry of the bundled tables
(``astropy-iers-data``), and a warning instead of an error for epochs past their end, where
astropy extrapolates UT1 (errors below a second, far below what topocentric asteroid positions
or parallaxes here can feel). Lambda functions have no internet, and tests must not need it;
without this, astropy tries to refresh tables older than 30 days on first use of UT1 or
polar motion.
"""

from __future__ import annotations

from astropy.utils import iers

__all__ = ["configure_astropy"]


def configure_astropy() -> None:
    """Set astropy's IERS configuration to offline (idempotent)."""
    iers.conf.auto_download = False
    iers.conf.auto_max_age = None
    iers.conf.iers_degraded_accuracy = "warn"


configure_astropy()
