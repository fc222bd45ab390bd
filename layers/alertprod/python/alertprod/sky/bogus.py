"""Detector defects and artifacts: bad columns, cosmic rays, hot pixels, edge junk, saturation.

These are what real difference images are full of. Bad columns, saturated pixels (with their
bleed trails along columns) and most cosmic rays are flagged in the ``MASK`` plane, as an
instrument-signature-removal step would flag (and, for cosmic rays, interpolate) them; a fraction of cosmic rays, hot pixels and
"edge junk" near the CCD border are left unflagged and become bogus detections. Every unflagged
artifact is recorded (``kind``, ``x``, ``y``) so the truth can label the detections it causes.
Dipoles from misalignment are made in :mod:`alertprod.sky.render` (a star slightly displaced
in the science image).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from alertprod.formats import MaskBit

__all__ = ["ArtifactList", "bad_columns", "add_cosmic_rays", "add_hot_pixels", "add_edge_junk",
           "saturate", "edge_mask"]


class ArtifactList:
    """Positions and kinds of the unflagged artifacts of one CCD-visit (bogus sources)."""

    def __init__(self) -> None:
        self.kind: list[str] = []
        self.x: list[float] = []
        self.y: list[float] = []

    def add(self, kind: str, x, y) -> None:
        """Record artifacts of one kind at pixel positions ``x``, ``y``."""
        for xi, yi in zip(np.atleast_1d(x), np.atleast_1d(y), strict=True):
            self.kind.append(kind)
            self.x.append(float(xi))
            self.y.append(float(yi))

    def __len__(self) -> int:
        return len(self.kind)


def bad_columns(detector: int, n_columns: int, nx: int, seed: int) -> np.ndarray:
    """Columns (x indices) that are bad on a detector: fixed for the survey, shape (n_columns,)."""
    rng = np.random.default_rng([int(seed), 7919, int(detector)])
    return np.sort(rng.choice(np.arange(8, nx - 8), size=n_columns, replace=False))


def edge_mask(shape: tuple[int, int], edge_pix: int) -> np.ndarray:
    """Boolean image, True within ``edge_pix`` of the border."""
    m = np.zeros(shape, dtype=bool)
    if edge_pix > 0:
        m[:edge_pix, :] = m[-edge_pix:, :] = True
        m[:, :edge_pix] = m[:, -edge_pix:] = True
    return m


def add_cosmic_rays(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, n_mean: float,
                    artifacts: ArtifactList, *, masked_fraction: float = 0.8) -> list[tuple]:
    """Add cosmic-ray tracks (1-6 pixel long, 500-5000 nJy per pixel) in place.

    A fraction ``masked_fraction`` is flagged ``CR`` and ``INTRP`` and interpolated over (left
    out of ``image``); the rest are added and recorded as ``cr_residual``.

    Returns
    -------
    list of (ys, xs, values, snap)
        The hit pixels of each ray, so that a snap-difference image can carry them (``snap`` 0
        or 1: which of the two snaps it hit).
    """
    ny, nx = image.shape
    hits = []
    for _ in range(rng.poisson(n_mean)):
        length = int(rng.integers(1, 7))
        angle = rng.uniform(0, np.pi)
        x0, y0 = rng.uniform(0, nx - 1), rng.uniform(0, ny - 1)
        steps = np.arange(length)
        xs = np.clip(np.rint(x0 + steps * np.cos(angle)).astype(int), 0, nx - 1)
        ys = np.clip(np.rint(y0 + steps * np.sin(angle)).astype(int), 0, ny - 1)
        values = rng.uniform(500.0, 5000.0, length)
        if rng.uniform() < masked_fraction:
            # found and interpolated over, as instrument-signature removal does: the pixels keep
            # their value without the ray (CR | INTRP) — left in, the subtraction kernel would
            # smear them onto unmasked neighbours and make bogus sources
            mask[ys, xs] |= int(MaskBit.CR | MaskBit.INTRP)
        else:
            image[ys, xs] += values
            artifacts.add("cr_residual", xs.mean(), ys.mean())
        hits.append((ys, xs, values, int(rng.integers(0, 2))))
    return hits


def add_hot_pixels(image: np.ndarray, rng: np.random.Generator, n_mean: float,
                   artifacts: ArtifactList, *, margin_pix: int = 10) -> None:
    """Add unflagged hot pixels (single pixels of 300-3000 nJy) in place."""
    ny, nx = image.shape
    n = rng.poisson(n_mean)
    xs = rng.integers(margin_pix, nx - margin_pix, n)
    ys = rng.integers(margin_pix, ny - margin_pix, n)
    image[ys, xs] += rng.uniform(300.0, 3000.0, n)
    artifacts.add("hot_pixel", xs, ys)


def add_edge_junk(image: np.ndarray, rng: np.random.Generator, n_mean: float, edge_pix: int,
                  artifacts: ArtifactList) -> None:
    """Add unflagged blobs (3x3 pixels, 200-2000 nJy peak) just inside the ``EDGE`` border."""
    ny, nx = image.shape
    for _ in range(rng.poisson(n_mean)):
        depth = edge_pix + 1 + int(rng.integers(0, 6))
        side = int(rng.integers(0, 4))
        along = int(rng.integers(10, (nx if side < 2 else ny) - 10))
        x, y = [(along, depth), (along, ny - 1 - depth), (depth, along), (nx - 1 - depth, along)][side]
        peak = rng.uniform(200.0, 2000.0)
        yy, xx = np.mgrid[-1:2, -1:2]
        image[y - 1:y + 2, x - 1:x + 2] += peak * np.exp(-(xx**2 + yy**2) / 1.5)
        artifacts.add("edge", x, y)


def saturate(image: np.ndarray, mask: np.ndarray, saturation_njy: float, *,
             max_bleed_pix: int = 200) -> int:
    """Clip pixels at the saturation level and bleed the excess charge along columns, in place.

    Each saturated region's excess flux (above ``saturation_njy``) is spread up and down its
    central column as a bleed trail at the saturation level, as a CCD's full wells overflow
    along the readout direction; all those pixels get ``SAT``.

    Returns
    -------
    int
        Number of saturated regions.
    """
    sat = image >= saturation_njy
    if not sat.any():
        return 0
    labels, n = ndimage.label(sat)
    ny = image.shape[0]
    for k, sl in enumerate(ndimage.find_objects(labels)):
        # the region's excess charge, summed over its bounding box only (not the whole image)
        excess = float(np.sum(image[sl][labels[sl] == k + 1] - saturation_njy))
        xc = (sl[1].start + sl[1].stop - 1) // 2
        length = int(min(max_bleed_pix, excess / saturation_njy / 2.0))
        y_lo, y_hi = max(0, sl[0].start - length), min(ny, sl[0].stop + length)
        sat[y_lo:y_hi, xc] = True
    image[sat] = saturation_njy
    mask[sat] |= int(MaskBit.SAT)
    return n
