"""The static HTML report of a replayed night: counts, sky map, timings, quarantine, alert pages.

- :mod:`~alertprod.report.build`       :func:`build_report`, the entry point, and the index page
- :mod:`~alertprod.report.alert_page`  one page per alert: cutouts, light curve, object fields
- :mod:`~alertprod.report.plots`       the matplotlib figures (object-oriented API, Agg canvas)
- :mod:`~alertprod.report.data`        reading the export: alerts, summary.json, quarantine.json
- :mod:`~alertprod.report.templates`   the HTML frame, stylesheet, script and escaping helpers

See docs/report.md.
"""

from alertprod.report.build import COUNT_LABELS, build_report
from alertprod.report.data import AlertRow, AlertSet, alert_row, cutout_image, read_alerts

__all__ = ["COUNT_LABELS", "AlertRow", "AlertSet", "alert_row", "build_report", "cutout_image",
           "read_alerts"]
