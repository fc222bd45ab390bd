"""Figures shared by the nightly report and the precovery service's page.

- :mod:`~alertprod.plotting.light_curve`  the light-curve drawing: band colours, markers per kind
  of point, error bars, upper limits, time axis; one implementation for both products

See docs/precovery-service.md (the light-curve plot) and docs/report.md.
"""

from alertprod.plotting.light_curve import (
    BAND_COLORS,
    PointKind,
    draw_points,
    light_curve_xlim,
    precovery_light_curve_svg,
)

__all__ = ["BAND_COLORS", "PointKind", "draw_points", "light_curve_xlim", "precovery_light_curve_svg"]
