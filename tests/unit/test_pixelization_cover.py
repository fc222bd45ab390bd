"""Exact HEALPix covers of padded CCD footprints and cones (``alertprod.pixelization``).

The covers must never miss a pixel that any point of the padded region falls in (checked by
sampling the region densely, boundary included), and should hold little more than those
pixels.
"""

import numpy as np
import pytest
from astropy_healpix import HEALPix

from alertprod.pixelization import pixel_of, pixels_covering, pixels_in_cone

ARCSEC = np.deg2rad(1 / 3600)


def _radec(vec):
    return np.column_stack([np.rad2deg(np.arctan2(vec[:, 1], vec[:, 0])) % 360,
                            np.rad2deg(np.arcsin(np.clip(vec[:, 2], -1, 1)))])


def _vec(ra_deg, dec_deg):
    ra, dec = np.deg2rad(ra_deg), np.deg2rad(dec_deg)
    return np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], -1)


def _tangent_basis(centre):
    east = np.cross([0.0, 0.0, 1.0], centre)
    east = east / np.linalg.norm(east) if np.linalg.norm(east) > 1e-9 else np.array([0., 1., 0.])
    return east, np.cross(centre, east)


def _ccd(centre, width_arcsec, height_arcsec, angle_rad):
    """Corner unit vectors (4, 3) of a rectangle on the tangent plane at ``centre``."""
    east, north = _tangent_basis(centre)
    w, h = width_arcsec * ARCSEC / 2, height_arcsec * ARCSEC / 2
    xy = np.array([[-w, -h], [w, -h], [w, h], [-w, h]])
    c, s = np.cos(angle_rad), np.sin(angle_rad)
    xy = xy @ np.array([[c, -s], [s, c]]).T
    corners = centre + xy[:, :1] * east + xy[:, 1:] * north
    return corners / np.linalg.norm(corners, axis=1, keepdims=True)


def _offset(points, directions, angle_rad):
    """Move unit vectors along unit tangent directions by an angle."""
    return np.cos(angle_rad) * points + np.sin(angle_rad) * directions


def _padded_samples(corners, margin_rad, rng, n=3000):
    """Points of the polygon padded by the margin, dense on the padded region's boundary."""
    centre = corners.mean(axis=0)
    centre /= np.linalg.norm(centre)
    inside = rng.dirichlet(np.ones(len(corners)), n) @ corners
    out = [inside / np.linalg.norm(inside, axis=1, keepdims=True)]
    reach = margin_rad * (1 - 1e-6)
    for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        t = np.linspace(0, 1, n)[:, None]
        edge = (1 - t) * a + t * b
        edge /= np.linalg.norm(edge, axis=1, keepdims=True)
        normal = np.cross(a, b)
        normal /= np.linalg.norm(normal)
        if normal @ centre > 0:
            normal = -normal  # outward
        for frac in (1.0, 0.5):
            out.append(_offset(edge, np.broadcast_to(normal, edge.shape), reach * frac))
        theta = np.linspace(0, 2 * np.pi, n)[:, None]
        e1, e2 = _tangent_basis(a)
        out.append(_offset(np.broadcast_to(a, (n, 3)), np.cos(theta) * e1 + np.sin(theta) * e2,
                           reach))
    return np.concatenate(out)


def _random_footprints(rng, count):
    """CCD-like rectangles anywhere, including across RA 0/360 and around the poles."""
    ra = rng.uniform(0, 360, count)
    dec = np.rad2deg(np.arcsin(rng.uniform(-1, 1, count)))
    ra[: count // 4] = rng.choice([0.0, 359.999, 0.001], count // 4)
    dec[count // 4: count // 2] = rng.choice([-1, 1], count // 4) * rng.uniform(89.9, 90.0,
                                                                                   count // 4)
    return [(_vec(r, d), rng.uniform(51, 816), rng.uniform(51, 816), rng.uniform(0, np.pi),
             rng.uniform(0, 30)) for r, d in zip(ra, dec, strict=True)]


@pytest.mark.parametrize("order", [8, 10])
def test_cover_holds_every_pixel_touched_by_the_padded_footprint(order):
    rng = np.random.default_rng(order)
    hit_total = extra_total = 0
    for centre, width, height, angle, margin in _random_footprints(rng, 40):
        corners = _ccd(centre, width, height, angle)
        cover = set(pixels_covering(_radec(corners), margin_arcsec=margin, order=order).tolist())
        samples = _radec(_padded_samples(corners, margin * ARCSEC, rng))
        hit = set(np.asarray(pixel_of(samples[:, 0], samples[:, 1], order=order)).tolist())
        assert hit <= cover, (np.rad2deg(centre), width, height, margin, sorted(hit - cover))
        hit_total += len(hit)
        extra_total += len(cover - hit)
    # Close to minimal: extra pixels only where the padded region grazes a pixel so little
    # that the samples miss it, or within the sampling tolerance.
    assert extra_total <= 0.05 * hit_total


def test_cover_of_a_small_ccd_is_far_tighter_than_its_bounding_cone():
    rng = np.random.default_rng(3)
    counts = [len(pixels_covering(_radec(_ccd(_vec(r, d), 51, 51, a)), margin_arcsec=20, order=8))
              for r, d, a in zip(rng.uniform(0, 360, 50), rng.uniform(-60, 60, 50),
                                 rng.uniform(0, np.pi, 50), strict=True)]
    assert max(counts) <= 4  # a 91″ padded square can touch at most 4 cells of 13.7′
    assert np.mean(counts) < 2


def test_footprint_inside_one_pixel_is_covered_by_that_pixel_alone():
    pixel = int(pixel_of(150.0, 2.0, order=4))  # pixels of ~3.7 deg
    ra, dec = (q.to_value("deg") for q in HEALPix(16, order="nested").healpix_to_lonlat(pixel))
    corners = _radec(_ccd(_vec(ra, dec), 51, 51, 0.3))
    assert list(pixels_covering(corners, order=4)) == [pixel]
    assert list(pixels_covering(corners, margin_arcsec=20, order=4)) == [pixel]


def test_point_and_repeated_corners_give_the_cone_cover():
    ra, dec, r_arcsec = 359.9999, -45.0, 30.0
    cone = pixels_in_cone(ra, dec, r_arcsec / 3600, order=10)
    point = pixels_covering(np.array([[ra, dec]] * 3), margin_arcsec=r_arcsec, order=10)
    assert np.array_equal(cone, point)
    assert int(pixel_of(ra, dec, order=10)) in cone


@pytest.mark.parametrize("dec", [0.0, 89.999, -89.999])
def test_cone_cover_holds_every_pixel_of_points_within_the_radius(dec):
    rng = np.random.default_rng(7)
    ra, radius = 0.001, 200 * ARCSEC
    centre = _vec(ra, dec)
    e1, e2 = _tangent_basis(centre)
    theta = rng.uniform(0, 2 * np.pi, 20000)[:, None]
    rad = radius * np.sqrt(rng.uniform(0, 1, (20000, 1)))
    rad[:5000] = radius * (1 - 1e-6)
    pts = _radec(_offset(centre, np.cos(theta) * e1 + np.sin(theta) * e2, rad))
    hit = set(np.asarray(pixel_of(pts[:, 0], pts[:, 1], order=10)).tolist())
    cover = set(pixels_in_cone(ra, dec, np.rad2deg(radius), order=10).tolist())
    assert hit <= cover
    assert len(cover - hit) <= 1


@pytest.mark.parametrize("bad", [np.zeros((0, 2)), np.zeros((3, 3)), np.array([[0, 95.0]] * 3),
                                 np.array([[np.nan, 0.0]] * 3)])
def test_malformed_corners_are_rejected_naming_the_argument(bad):
    with pytest.raises(ValueError, match="corners_radec"):
        pixels_covering(bad)


def test_negative_margin_and_region_larger_than_allowed_are_rejected():
    with pytest.raises(ValueError, match="margin_arcsec"):
        pixels_covering(np.array([[0, 0], [1, 0], [1, 1.0]]), margin_arcsec=-1)
    with pytest.raises(ValueError, match="corners_radec"):
        pixels_covering(np.array([[0, 0], [120, 0], [240, 0.0]]))
    with pytest.raises(ValueError, match="radius_deg"):
        pixels_in_cone(0, 0, -1.0)
