"""The survey simulator: focal plane, sky, visits, rendering, and the truth.

- :mod:`~alertprod.sky.presets` — :class:`SurveyConfig` and the named presets;
- :mod:`~alertprod.sky.focal_plane` — CCD grid and per-CCD WCS;
- :mod:`~alertprod.sky.survey` — the visit schedule (pairs, dithers, seeing, depth);
- :mod:`~alertprod.sky.static_sky`, :mod:`~alertprod.sky.variables`,
  :mod:`~alertprod.sky.transients`, :mod:`~alertprod.sky.proper_motion`,
  :mod:`~alertprod.sky.asteroids` — the objects;
- :mod:`~alertprod.sky.perturbed` — the asteroids' true (perturbed) motion, integrated
  independently of the pipeline's;
- :mod:`~alertprod.sky.orbit_errors` — the ``mpcorb.dat`` the pipeline gets: stale epochs,
  errors graded by U;
- :mod:`~alertprod.sky.bogus` — detector defects and artifacts;
- :mod:`~alertprod.sky.scene`, :mod:`~alertprod.sky.render` — one CCD-visit's images;
- :mod:`~alertprod.sky.truth` — truth tables, detection labelling, :func:`load_truth`;
- :mod:`~alertprod.sky.writer` — :func:`simulate_survey`.

See docs/simulator.md.
"""

import alertprod._astropy_config  # noqa: F401  (offline IERS tables)
from alertprod.sky.presets import PRESETS, SurveyConfig, get_preset
from alertprod.sky.truth import Truth, load_truth
from alertprod.sky.writer import SurveySummary, simulate_survey

__all__ = ["PRESETS", "SurveyConfig", "SurveySummary", "Truth", "get_preset", "load_truth",
           "simulate_survey"]
