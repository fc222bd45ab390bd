"""Re-created difference images: ZOGY on tiles around the positions to measure, not the whole CCD.

The precovery service (DMS-REQ-0341) measures positions on visits whose difference image has
expired from the 30-day cache; the difference is then re-created from the archived calibrated
exposure (science) and its template. Forced photometry at a position reads only the k × k stamp
around it (k the PSF size), and a ZOGY difference at a pixel depends only on the input pixels
within the half-width of the ZOGY kernels (:func:`alertprod.imaging.subtraction.zogy_kernels`),
so each position needs a window of ``k + 2 · (kernel half-width)`` pixels, not the CCD.

Tiles. A tile's *core* holds the stamps of its positions (clipped to the CCD); its *window*,
the pixels read, is the core grown by the kernel half-width (clipped to the CCD). Every pixel of
the core then has its whole kernel footprint inside the window or off the CCD, so
:func:`~alertprod.imaging.subtraction.zogy_subtract` of the window gives, in the core, the numbers
the whole-CCD subtraction gives (the window's border is the CCD's own where they meet). Isolated
positions get a tile each; nearby ones share a tile when that costs less FFT work, up to
``tile_pix`` on a side (:func:`recreation_tiles`). What can differ from the whole CCD is the
noise level ZOGY computes from its inputs — the median of each variance plane, here of the
window — which changes the kernels' weighting (D stays unbiased: a source of flux f is f · P_D
for any noise levels) and the difference PSF, which moves a fitted flux by 1.5–2.5 × 10⁻⁴ for a
1 % change (docs/images.md, "Re-created difference images").

Inputs may hold data only in the windows (as ``ExposureFile.read_windows`` returns them: full
shape, NaN and ``NO_DATA`` outside): nothing outside :func:`recreation_windows` is read.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from alertprod.errors import ImageError
from alertprod.formats.exposure import Exposure
from alertprod.formats.mask import MaskBit
from alertprod.imaging._checks import check_pixel_positions
from alertprod.imaging.psf import validate_psf
from alertprod.imaging.subtraction import zogy_kernels, zogy_subtract

__all__ = ["DEFAULT_TILE_PIX", "RecreationTile", "recreate_difference", "recreation_tiles",
           "recreation_windows", "zogy_kernel_size_pix"]

#: Default largest tile side (pixels), from tests/benchmarks/test_bench_recreate.py (docs/images.md, "Re-created difference images").
DEFAULT_TILE_PIX = 1024

#: Fixed cost of one tile's subtraction (kernels, small FFTs, Python) in pixels of FFT work:
#: ~5 ms against ~130 ns per pixel on one core (docs/images.md, "Re-created difference images").
_TILE_OVERHEAD_PIX = 40_000

Window = tuple[int, int, int, int]


class RecreationTile(NamedTuple):
    """One tile of a re-creation.

    Attributes
    ----------
    window : tuple of int
        ``(y0, y1, x0, x1)``: the science and template pixels read (numpy slices, end excluded).
    core : tuple of int
        ``(y0, y1, x0, x1)``: where the tile's difference is valid (inside ``window``); it holds
        the forced-photometry stamps of the tile's positions.
    positions : ndarray of int64
        Indices of the positions (into the arrays given) the tile serves.
    """

    window: Window
    core: Window
    positions: np.ndarray


def zogy_kernel_size_pix(psf_size_pix: int) -> int:
    """Side of the ZOGY kernel grid :func:`~alertprod.imaging.subtraction.zogy_kernels` uses for
    PSFs of at most ``psf_size_pix`` pixels (odd); the kernels' half-width is half of it."""
    k = _check_psf_size(psf_size_pix)
    delta = np.zeros((k, k))
    delta[k // 2, k // 2] = 1.0
    return int(zogy_kernels(delta, delta, 1.0, 1.0, 1.0).k_n.shape[0])


def _check_psf_size(psf_size_pix: int) -> int:
    k = int(psf_size_pix)
    if k != psf_size_pix or k < 1 or k % 2 == 0:
        raise ImageError(f"psf_size_pix must be a positive odd integer, got {psf_size_pix!r}")
    return k


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        ny, nx = (int(s) for s in shape)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"shape must be (ny, nx), got {shape!r}") from exc
    if ny < 1 or nx < 1:
        raise ImageError(f"shape must be positive, got {shape!r}")
    return ny, nx


def _fft_cost(window: Window) -> int:
    return (window[1] - window[0]) * (window[3] - window[2]) + _TILE_OVERHEAD_PIX


def _tile(ix: np.ndarray, iy: np.ndarray, idx: np.ndarray, h: int, margin: int, ny: int, nx: int
          ) -> RecreationTile:
    """The tile whose core holds the stamps (half-width ``h``) centred on pixels ``(ix, iy)``."""
    core = (max(int(iy.min()) - h, 0), min(int(iy.max()) + h + 1, ny),
            max(int(ix.min()) - h, 0), min(int(ix.max()) + h + 1, nx))
    window = (max(core[0] - margin, 0), min(core[1] + margin, ny),
              max(core[2] - margin, 0), min(core[3] + margin, nx))
    return RecreationTile(window, core, np.sort(idx))


def _plan(ix: np.ndarray, iy: np.ndarray, idx: np.ndarray, h: int, margin: int, ny: int, nx: int
          ) -> list[RecreationTile]:
    """One tile for the group, or the cheaper plans of its two halves (split at the median of
    the longer extent), whichever costs less FFT work."""
    merged = _tile(ix, iy, idx, h, margin, ny, nx)
    spread_y, spread_x = int(iy.max() - iy.min()), int(ix.max() - ix.min())
    # any split makes two tiles or more, each costing about an isolated position's tile or more
    # (less only where the CCD edge clips it), so a group this small stays whole
    smallest = (2 * (h + margin) + 1) ** 2 + _TILE_OVERHEAD_PIX
    if idx.size == 1 or _fft_cost(merged.window) <= 2 * smallest:
        return [merged]
    order = np.argsort(iy if spread_y >= spread_x else ix, kind="stable")
    lo, hi = order[:order.size // 2], order[order.size // 2:]
    parts = (_plan(ix[lo], iy[lo], idx[lo], h, margin, ny, nx)
             + _plan(ix[hi], iy[hi], idx[hi], h, margin, ny, nx))
    return [merged] if _fft_cost(merged.window) <= sum(_fft_cost(p.window) for p in parts) else parts


def recreation_tiles(x_pix: np.ndarray, y_pix: np.ndarray, shape: tuple[int, int], *,
                     psf_size_pix: int, tile_pix: int = DEFAULT_TILE_PIX,
                     kernel_size_pix: int | None = None) -> list[RecreationTile]:
    """Tiles that re-create the difference image around the given positions.

    Positions are grouped on a grid of cells ``tile_pix − 2 · (kernel half-width +
    psf_size_pix // 2)`` pixels wide, so that no tile is wider than ``tile_pix``; within a cell
    the positions share one tile, or are split in halves (recursively, at the median of the
    longer extent) when the halves' tiles cost less FFT work together (pixels plus a fixed cost
    per tile, ~5 ms of one core ≈ 4 · 10⁴ pixels). Isolated positions thus get tiles of
    ``psf_size_pix + 2 · (kernel half-width)`` pixels, dense ones share tiles up to ``tile_pix``.

    Parameters
    ----------
    x_pix, y_pix : array_like, shape (n,)
        0-based pixel positions (pixel centres at integers), finite. Positions whose centre is
        off the CCD (outside ``[-0.5, n − 0.5)``, where forced photometry returns no flux) get
        no tile.
    shape : tuple of int
        ``(ny, nx)`` of the CCD.
    psf_size_pix : int, keyword-only
        Side of the larger of the science and template PSFs (odd): the difference PSF and the
        forced-photometry stamp have this side.
    tile_pix : int, keyword-only
        Largest side of a tile (pixels); at least ``2 · (kernel half-width + psf_size_pix // 2)
        + 1``. A ``tile_pix`` larger than the CCD plus that margin puts every position in one
        cell (the whole CCD at most).
    kernel_size_pix : int, keyword-only, optional
        ZOGY kernel grid side; default :func:`zogy_kernel_size_pix` (what
        :func:`~alertprod.imaging.subtraction.zogy_subtract` uses).

    Returns
    -------
    list of RecreationTile
        Empty when no position is on the CCD.

    Raises
    ------
    ImageError
        Naming the argument: positions not 1-D, of unequal length or not finite; a bad
        ``shape``, ``psf_size_pix`` or ``kernel_size_pix``; ``tile_pix`` below its minimum.
    """
    x, y = check_pixel_positions(x_pix, y_pix)
    ny, nx = _check_shape(shape)
    k = _check_psf_size(psf_size_pix)
    ksize = zogy_kernel_size_pix(k) if kernel_size_pix is None else int(kernel_size_pix)
    if kernel_size_pix is not None and (ksize != kernel_size_pix or ksize < 1):
        raise ImageError(f"kernel_size_pix must be a positive integer, got {kernel_size_pix!r}")
    h, margin = k // 2, ksize // 2
    try:
        cell = int(tile_pix) - 2 * (margin + h)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"tile_pix must be an integer, got {tile_pix!r}") from exc
    if int(tile_pix) != tile_pix or cell < 1:
        raise ImageError(f"tile_pix must be an integer ≥ {2 * (margin + h) + 1} (kernel half-width "
                         f"{margin} and stamp half-width {h} on both sides), got {tile_pix!r}")
    on = np.flatnonzero((x >= -0.5) & (x < nx - 0.5) & (y >= -0.5) & (y < ny - 0.5))
    ix = np.floor(x[on] + 0.5).astype(np.int64)  # the stamp centre, as forced photometry takes it
    iy = np.floor(y[on] + 0.5).astype(np.int64)
    key = (iy // cell) * ((nx + cell - 1) // cell) + ix // cell
    order = np.argsort(key, kind="stable")
    starts = np.flatnonzero(np.r_[True, key[order][1:] != key[order][:-1]]) if on.size else []
    tiles: list[RecreationTile] = []
    for group in np.split(order, starts[1:]) if on.size else []:
        tiles += _plan(ix[group], iy[group], on[group], h, margin, ny, nx)
    return tiles


def recreation_windows(x_pix: np.ndarray, y_pix: np.ndarray, shape: tuple[int, int], *,
                       psf_size_pix: int, tile_pix: int = DEFAULT_TILE_PIX,
                       kernel_size_pix: int | None = None) -> list[Window]:
    """The science and template pixels a re-creation at these positions reads.

    A reader fetches only these ``(y0, y1, x0, x1)`` windows (numpy slices, end excluded) of
    both images; :func:`recreate_difference` with the same arguments reads nothing else.
    Arguments as :func:`recreation_tiles`.
    """
    return [t.window for t in recreation_tiles(x_pix, y_pix, shape, psf_size_pix=psf_size_pix,
                                               tile_pix=tile_pix, kernel_size_pix=kernel_size_pix)]


def _crop(exp: Exposure, window: Window) -> Exposure:
    y0, y1, x0, x1 = window
    return Exposure(exp.image[y0:y1, x0:x1], exp.variance[y0:y1, x0:x1], exp.mask[y0:y1, x0:x1],
                    exp.psf, exp.wcs[y0:y1, x0:x1], exp.info, exp.header)


def _has_data(exp: Exposure) -> bool:
    """Whether any pixel is usable by ZOGY (finite, positive variance, not ``NO_DATA``)."""
    with np.errstate(invalid="ignore"):
        usable = (np.isfinite(exp.image) & np.isfinite(exp.variance) & (exp.variance > 0)
                  & ((exp.mask & int(MaskBit.NO_DATA)) == 0))
    return bool(usable.any())


def _check_inputs(science: Exposure, template: Exposure, flux_scale: float) -> float:
    for name, exp in (("science", science), ("template", template)):
        if not isinstance(exp, Exposure):
            raise ImageError(f"{name} must be an Exposure, got {type(exp).__name__}")
        if exp.image.ndim != 2 or exp.variance.shape != exp.image.shape or exp.mask.shape != exp.image.shape:
            raise ImageError(f"{name}: image, variance and mask must be 2-D of one shape")
        validate_psf(exp.psf, name=f"{name}.psf")
    if template.shape != science.shape:
        raise ImageError(f"template shape {template.shape} differs from science shape {science.shape}: "
                         "resample it onto the science grid first (resample_exposure)")
    try:
        fs = float(flux_scale)
    except (TypeError, ValueError) as exc:
        raise ImageError(f"flux_scale must be a finite positive number, got {flux_scale!r}") from exc
    if not (np.isfinite(fs) and fs > 0):
        raise ImageError(f"flux_scale must be a finite positive number, got {flux_scale!r}")
    return fs


def recreate_difference(science: Exposure, template: Exposure, x_pix: np.ndarray, y_pix: np.ndarray,
                        *, tile_pix: int = DEFAULT_TILE_PIX, flux_scale: float = 1.0,
                        workers: int = 1) -> Exposure:
    """Re-create the ZOGY difference image around the given positions, tile by tile.

    Parameters
    ----------
    science : Exposure
        The calibrated exposure (nJy, background-subtracted), shape (ny, nx). Only the pixels
        in :func:`recreation_windows` are read; elsewhere it may be NaN.
    template : Exposure
        The template on the science pixel grid, same shape and the same windows read.
    x_pix, y_pix : array_like, shape (n,)
        0-based pixel positions to be measured on the difference (finite).
    tile_pix : int, keyword-only
        Largest tile side (see :func:`recreation_tiles`).
    flux_scale : float, keyword-only
        ``F_r / F_n``, template pixel value per science nJy: 1 for two images calibrated in
        nJy (the contract). Not estimated: :func:`~alertprod.imaging.subtraction.estimate_flux_scale`
        needs three bright stars in both images of a tile and would otherwise return 1, and a
        scale from a few stars differs from tile to tile (docs/images.md, "Re-created difference images").
    workers : int, keyword-only
        Threads of each tile's FFTs.

    Returns
    -------
    Exposure
        Shape (ny, nx), the science WCS and metadata (header card ``RECREATE = True``). Inside
        the tiles' cores: the difference D (nJy), its variance and mask as
        :func:`~alertprod.imaging.subtraction.zogy_subtract` makes them. Elsewhere, and in a
        tile whose science or template has no usable pixel: NaN and ``NO_DATA``. ``psf``: the
        difference PSF, the mean of the tiles' weighted by their positions (they differ only
        through the tiles' noise levels).

    Raises
    ------
    ImageError
        Naming the argument: not an Exposure, mismatched shapes, an invalid PSF
        (``PsfError``), a non-positive or non-finite ``flux_scale``, bad positions or
        ``tile_pix``.
    """
    fs = _check_inputs(science, template, flux_scale)
    psf_size = max(science.psf.shape[0], template.psf.shape[0])
    ksize = zogy_kernel_size_pix(psf_size)
    tiles = recreation_tiles(x_pix, y_pix, science.shape, psf_size_pix=psf_size, tile_pix=tile_pix,
                             kernel_size_pix=ksize)
    ny, nx = science.shape
    image = np.full((ny, nx), np.nan, dtype=np.float32)
    variance = np.full((ny, nx), np.nan, dtype=np.float32)
    mask = np.full((ny, nx), int(MaskBit.NO_DATA), dtype=np.int32)
    psf_sum, weight = np.zeros((psf_size, psf_size)), 0
    for tile in tiles:
        sci, tmp = _crop(science, tile.window), _crop(template, tile.window)
        if not (_has_data(sci) and _has_data(tmp)):
            continue  # nothing to subtract: the core stays NO_DATA
        d = zogy_subtract(sci, tmp, flux_scale=fs, workers=workers, compute_score=False,
                          kernel_size_pix=ksize).difference
        y0, y1, x0, x1 = tile.core
        src = (slice(y0 - tile.window[0], y1 - tile.window[0]), slice(x0 - tile.window[2], x1 - tile.window[2]))
        image[y0:y1, x0:x1] = d.image[src]
        variance[y0:y1, x0:x1] = d.variance[src]
        mask[y0:y1, x0:x1] = d.mask[src]
        psf_sum += tile.positions.size * d.psf
        weight += tile.positions.size
    if weight:
        psf = psf_sum / psf_sum.sum()
    else:  # no tile subtracted: the PSF the difference would have at equal noise levels
        psf = zogy_kernels(science.psf, template.psf, 1.0, 1.0 / fs, fs, size_pix=ksize).psf_d
    header = dict(science.header)
    header["RECREATE"] = True
    return Exposure(image, variance, mask, psf, science.wcs, science.info, header)
