"""PSF models: pixel integration, normalisation, size, moments, sub-pixel shifts, injection."""

import numpy as np
import pytest
from scipy import special

from alertprod.errors import ImageError, PsfError
from alertprod.imaging.psf import (
    add_point_sources,
    gaussian_psf,
    moffat_psf,
    psf_centroid,
    psf_effective_area_pix,
    psf_fwhm_pix,
    psf_stamps,
    shift_psf,
    sinc_shift_matrices,
    validate_psf,
)

MODELS = [gaussian_psf, moffat_psf]


def _truth(model, fwhm_pix, k, dx, dy, pad=8):
    """The model rendered exactly at an offset, normalised like the centred k × k stamp."""
    big = model(fwhm_pix, size_pix=k + 2 * pad, dx_pix=dx, dy_pix=dy)
    centred = model(fwhm_pix, size_pix=k + 2 * pad)
    return big[pad:-pad, pad:-pad] / centred[pad:-pad, pad:-pad].sum()


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fwhm_pix", [1.5, 3.0, 5.0])
def test_psf_is_odd_normalised_and_centred(model, fwhm_pix):
    psf = model(fwhm_pix)
    k = psf.shape[0]
    assert psf.shape == (k, k) and k % 2 == 1
    assert psf.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.unravel_index(np.argmax(psf), psf.shape) == (k // 2, k // 2)
    cx, cy = psf_centroid(psf)
    assert cx == pytest.approx(k // 2, abs=1e-9) and cy == pytest.approx(k // 2, abs=1e-9)
    np.testing.assert_allclose(psf, psf[::-1, ::-1], atol=1e-15)
    np.testing.assert_allclose(psf, psf.T, atol=1e-15)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("fwhm_pix", [2.0, 3.5, 6.0])
def test_default_size_holds_at_least_995_permille_of_the_flux(model, fwhm_pix):
    k = model(fwhm_pix).shape[0]
    big = model(fwhm_pix, size_pix=k + 200)  # ≈ all the flux
    assert big[100:-100, 100:-100].sum() >= 0.995
    assert model(fwhm_pix, size_pix=k - 2)[0].size < k  # the default is not oversized by 2+
    if model is gaussian_psf:
        smaller = big[101:-101, 101:-101].sum()
        assert smaller < 0.995  # the smallest odd size that reaches the target


def test_gaussian_pixels_are_integrals_over_the_pixel_not_centre_samples():
    fwhm = 1.2
    psf = gaussian_psf(fwhm, size_pix=7)
    sigma = fwhm / (2 * np.sqrt(2 * np.log(2)))
    edges = np.arange(-3.5, 4.0)
    one_d = np.diff(special.erf(edges / (sigma * np.sqrt(2)))) / 2
    expected = np.outer(one_d, one_d)
    np.testing.assert_allclose(psf, expected / expected.sum(), rtol=1e-12)
    sampled = np.exp(-(np.arange(-3, 4)[:, None] ** 2 + np.arange(-3, 4) ** 2) / (2 * sigma**2))
    assert abs(psf[3, 3] - sampled[3, 3] / sampled.sum()) > 0.05  # centre-sampling differs


def test_moffat_pixel_integration_converges():
    """Gauss–Legendre pixel integrals agree with a 63 × 63 brute-force sum to < 1e-4 of the peak."""
    fwhm, beta, k, m = 2.5, 3.5, 11, 63
    psf = moffat_psf(fwhm, beta=beta, size_pix=k)
    alpha = fwhm / (2 * np.sqrt(2 ** (1 / beta) - 1))
    sub = (np.arange(k * m) - (k * m - 1) / 2) / m
    fine = (1 + (sub[:, None] ** 2 + sub[None, :] ** 2) / alpha**2) ** -beta
    ref = fine.reshape(k, m, k, m).sum(axis=(1, 3))
    assert np.abs(psf - ref / ref.sum()).max() < 1e-4 * psf.max()


def test_fwhm_and_effective_area_are_those_of_the_pixel_convolved_gaussian():
    fwhm = 3.0
    psf = gaussian_psf(fwhm, size_pix=31)
    seen = np.sqrt(fwhm**2 + (2 * np.sqrt(2 * np.log(2))) ** 2 / 12)
    assert psf_fwhm_pix(psf) == pytest.approx(seen, rel=0.02)
    sigma2 = (fwhm / 2.3548) ** 2 + 1 / 12
    assert psf_effective_area_pix(psf) == pytest.approx(4 * np.pi * sigma2, rel=0.02)
    assert psf_fwhm_pix(moffat_psf(4.0)) == pytest.approx(4.0, rel=0.05)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize(("dx", "dy"), [(0.3, -0.2), (0.5, 0.5), (-0.45, 0.1), (1.7, -2.3)])
def test_sinc_shift_matches_the_model_rendered_at_the_offset(model, dx, dy):
    fwhm, k = 3.0, 21
    psf = model(fwhm, size_pix=k)
    truth = _truth(model, fwhm, k, dx, dy)
    shifted = shift_psf(psf, dx, dy)
    assert np.abs(shifted - truth).max() < 1e-3 * truth.max()
    flux_bias = (shifted * truth).sum() / (shifted * shifted).sum() - 1
    assert abs(flux_bias) < 5e-5
    cx, cy = psf_centroid(shifted / shifted.sum())
    tx, ty = psf_centroid(truth / truth.sum())  # ≈ (k//2 + dx, k//2 + dy) less edge losses
    assert (cx, cy) == pytest.approx((tx, ty), abs=5e-3)  # the truth has wings past the stamp
    if max(abs(dx), abs(dy)) <= 0.5:
        assert (cx, cy) == pytest.approx((k // 2 + dx, k // 2 + dy), abs=2e-3)


def test_zero_shift_is_the_identity_and_matrices_are_toeplitz_sincs():
    psf = moffat_psf(3.0)
    assert np.array_equal(shift_psf(psf, 0.0, 0.0), psf)
    w = sinc_shift_matrices(np.array([0.25]), 5)[0]
    i, m = np.meshgrid(np.arange(5), np.arange(5), indexing="ij")
    np.testing.assert_allclose(w, np.sinc(i - m - 0.25), atol=1e-15)


def test_vectorised_stamps_equal_one_by_one_shifts():
    psf = gaussian_psf(2.5, size_pix=15)
    rng = np.random.default_rng(3)
    dx, dy = rng.uniform(-0.5, 0.5, 40), rng.uniform(-0.5, 0.5, 40)
    stamps = psf_stamps(psf, dx, dy)
    assert stamps.shape == (40, 15, 15)
    for s in (0, 17, 39):
        np.testing.assert_allclose(stamps[s], sinc_shift_matrices(dy[s:s + 1], 15)[0] @ psf
                                   @ sinc_shift_matrices(dx[s:s + 1], 15)[0].T, atol=1e-14)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.ones((3, 3, 3)) / 27, "2-D"),
        (np.ones((3, 5)) / 15, "square and odd"),
        (np.ones((4, 4)) / 16, "square and odd"),
        (np.full((3, 3), np.nan), "non-finite"),
        (-np.ones((3, 3)) / 9, "non-positive"),
        (np.ones((3, 3)) / 9 * 1.01, "not 1"),
    ],
)
def test_validate_psf_names_what_is_wrong(bad, message):
    with pytest.raises(PsfError, match=message):
        validate_psf(bad)


def test_validate_psf_accepts_a_normalised_psf_within_tolerance():
    psf = gaussian_psf(3.0) * (1 + 5e-4)
    assert validate_psf(psf).dtype == np.float64


def test_injected_sources_carry_their_flux_and_clip_at_edges():
    psf = gaussian_psf(3.0, size_pix=15)
    image = np.zeros((60, 80), dtype=np.float32)
    add_point_sources(image, psf, [30.3, 70.0], [20.6, 40.0], [1000.0, 500.0])
    assert image.sum() == pytest.approx(1500.0 * psf.sum(), rel=1e-4)
    stamp = image[21 - 7:21 + 8, 30 - 7:30 + 8]
    np.testing.assert_allclose(stamp, 1000 * shift_psf(psf, 0.3, -0.4), atol=1e-3)
    edge = np.zeros((60, 80))
    add_point_sources(edge, psf, [-2.0], [1.0], [1000.0])  # centre off the image
    assert 0 < edge.sum() < 500
    with pytest.raises(ImageError):
        add_point_sources(np.zeros((5, 5), dtype=int), psf, [1.0], [1.0], [1.0])
