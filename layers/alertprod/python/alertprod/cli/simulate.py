"""``alertprod simulate``: write a synthetic survey in the upload layout, with its truth."""

from __future__ import annotations

import argparse

__all__ = ["register", "run"]


def register(subparsers) -> None:
    """Add the ``simulate`` command to the ``alertprod`` parser."""
    from alertprod.sky.presets import PRESETS

    p = subparsers.add_parser(
        "simulate",
        help="write a synthetic survey (images, DiaSource catalogs, mpcorb.dat, truth)",
        description="Simulate a survey: render science images and templates, subtract (ZOGY), "
                    "detect DiaSources, and write them in the upload layout under DIR "
                    "(images/visits/..., diasources/..., mpcorb.dat) with the truth in DIR/truth/.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS),
                   help="survey size: tiny (tests, seconds), tiny-stale-orbits (tiny with an MPCORB.DAT "
                        "150 days old), night (demo), lsst-ccd (4k x 4k CCDs)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same catalogs)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: preset's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the simulation and print a summary."""
    from alertprod.sky import simulate_survey

    s = simulate_survey(args.out, preset=args.preset, seed=args.seed, progress=not args.no_progress,
                        n_workers=args.workers)
    print(f"simulated preset {s.preset!r} seed {s.seed}: {s.n_visits} visits over {s.n_nights} nights, "
          f"{s.n_detectors} CCDs, {s.n_ccd_visits} CCD-visits")
    print(f"DiaSources: {s.n_diasources} ({s.n_real} real, {s.n_bogus} bogus)")
    print("objects: " + ", ".join(f"{k} {v}" for k, v in sorted(s.counts.items())))
    print(f"written to {s.out_dir} (truth in {s.out_dir / 'truth'})")
    return 0
