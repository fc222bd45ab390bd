"""A small, exact sky for pipeline tests: a row of adjacent CCDs and point sources on them.

Each upload carries a catalog whose positions and fluxes are the truth (so association can be
checked exactly) and images with the sources rendered through a Gaussian PSF over noise, so
forced photometry and cutouts run on real pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.table import Table
from astropy.wcs import WCS

from alertprod.formats import (
    Exposure,
    ExposureInfo,
    diasource_key,
    image_key,
    write_diasource_catalog,
    write_exposure,
)
from alertprod.imaging.psf import add_point_sources, gaussian_psf

SCALE_ARCSEC = 0.2
NOISE_NJY = 20.0


@dataclass
class CcdSky:
    """A row of ``n_detectors`` CCDs of ``npix`` × ``npix`` pixels, adjacent along RA."""

    ra0: float = 150.0
    dec0: float = 2.0
    npix: int = 200
    n_detectors: int = 2

    def wcs(self, detector: int) -> WCS:
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.crval = [self.ra0, self.dec0]
        # Detector d spans x in [d*npix, (d+1)*npix) of one tangent plane: CCDs share edges exactly.
        w.wcs.crpix = [self.npix * self.n_detectors / 2 + 0.5 - detector * self.npix, self.npix / 2 + 0.5]
        w.wcs.cd = np.array([[-SCALE_ARCSEC / 3600, 0], [0, SCALE_ARCSEC / 3600]])
        return w

    def radec(self, detector: int, x: float, y: float) -> tuple[float, float]:
        ra, dec = self.wcs(detector).all_pix2world([[x, y]], 0)[0]
        return float(ra), float(dec)

    def detector_of(self, ra: float, dec: float) -> tuple[int, float, float] | None:
        for d in range(self.n_detectors):
            x, y = self.wcs(d).all_world2pix([[ra, dec]], 0)[0]
            if -0.5 <= x < self.npix - 0.5 and -0.5 <= y < self.npix - 0.5:
                return d, float(x), float(y)
        return None

    def upload(self, visit: int, detector: int, mjd: float, sources, *, band: str = "r", seed: int = 0,
               kinds=("science", "difference", "template"), fwhm_pix: float = 3.0):
        """Catalog bytes and ``{image key: bytes}`` of one CCD.

        ``sources``: iterable of (ra, dec, flux_nJy, detected: bool). Undetected sources are
        rendered in the images but absent from the catalog.
        """
        rng = np.random.default_rng([visit, detector, seed])
        wcs = self.wcs(detector)
        psf = gaussian_psf(fwhm_pix)
        rows = []
        img_diff = rng.normal(0, NOISE_NJY, (self.npix, self.npix))
        img_sci = rng.normal(0, NOISE_NJY, (self.npix, self.npix))
        xs, ys, fl = [], [], []
        for k, (ra, dec, flux, detected) in enumerate(sources):
            x, y = wcs.all_world2pix([[ra, dec]], 0)[0]
            if not (-0.5 <= x < self.npix - 0.5 and -0.5 <= y < self.npix - 0.5):
                continue
            xs.append(x)
            ys.append(y)
            fl.append(flux)
            if detected:
                rows.append((ra, dec, x, y, flux, k))
        if xs:
            add_point_sources(img_diff, psf, np.array(xs), np.array(ys), np.array(fl))
            add_point_sources(img_sci, psf, np.array(xs), np.array(ys), np.array(fl))
        n = len(rows)
        err = NOISE_NJY * np.sqrt(4 * np.pi * (fwhm_pix / 2.355) ** 2)
        t = Table({
            "diaSourceId": np.array([(visit * 1000 + detector) * 100000 + 1 + i for i in range(n)], np.int64),
            "ra": np.array([r[0] for r in rows], float), "dec": np.array([r[1] for r in rows], float),
            "raErr": np.full(n, 0.05 / 3600), "decErr": np.full(n, 0.05 / 3600),
            "x": np.array([r[2] for r in rows], float), "y": np.array([r[3] for r in rows], float),
            "psfFlux": np.array([r[4] for r in rows], float), "psfFluxErr": np.full(n, err),
            "snr": np.array([r[4] / err for r in rows], float),
        })
        info = ExposureInfo(visit, detector, band, mjd, 30.0)
        cat = write_diasource_catalog(t, info, wcs, (self.npix, self.npix))
        var = np.full((self.npix, self.npix), NOISE_NJY**2, np.float32)
        mask = np.zeros((self.npix, self.npix), np.int32)
        planes = {"difference": img_diff, "science": img_sci,
                  "template": rng.normal(0, NOISE_NJY / 5, (self.npix, self.npix))}
        images = {image_key(visit, detector, kind): write_exposure(
            Exposure(planes[kind].astype(np.float32), var, mask, psf, wcs, info)) for kind in kinds}
        return diasource_key(visit, detector), cat, images


def put_upload(stack, key: str, cat: bytes, images: dict[str, bytes]) -> None:
    """Upload images then the catalog to the stack's buckets."""
    s3 = stack.clients.s3
    res = stack.resources
    for ikey, data in images.items():
        s3.put_object(Bucket=res.image_bucket, Key=ikey, Body=data)
    s3.put_object(Bucket=res.upload_bucket, Key=key, Body=cat)
