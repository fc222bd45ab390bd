"""Shared fixtures: small synthetic uploads that follow the contract."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table
from synthetic import make_wcs

from alertprod.formats import Exposure, ExposureInfo, write_diasource_catalog, write_exposure


@pytest.fixture
def upload_factory():
    """Build (catalog_bytes, {kind: image_bytes}) for one CCD; keyword overrides break things."""

    def build(visit=1, detector=0, n=20, nx=256, ny=256, band="r", mjd=60000.1, seed=1,
              columns=None, header=None, kinds=("science", "difference", "template")):
        rng = np.random.default_rng(seed)
        wcs = make_wcs(nx=nx, ny=ny)
        x = rng.uniform(5, nx - 5, n)
        y = rng.uniform(5, ny - 5, n)
        ra, dec = wcs.all_pix2world(x, y, 0)
        t = Table({
            "diaSourceId": (visit * 1000 + detector) * 100000 + np.arange(1, n + 1, dtype=np.int64),
            "ra": ra, "dec": dec, "raErr": np.full(n, 1e-5), "decErr": np.full(n, 1e-5),
            "x": x, "y": y, "psfFlux": rng.uniform(1e3, 1e4, n), "psfFluxErr": np.full(n, 100.0),
            "snr": rng.uniform(5, 100, n),
        })
        if columns:
            for k, v in columns.items():
                if v is None:
                    del t[k]
                else:
                    t[k] = v
        info = ExposureInfo(visit, detector, band, mjd, 30.0)
        cat = write_diasource_catalog(t, info, wcs, (nx, ny))
        if header:
            import io

            from astropy.io import fits
            hdul = fits.open(io.BytesIO(cat))
            for k, v in header.items():
                hdul[0].header[k] = v
            buf = io.BytesIO()
            hdul.writeto(buf)
            cat = buf.getvalue()
        images = {}
        for kind in kinds:
            img = rng.normal(0, 10, (ny, nx)).astype(np.float32)
            psf = np.zeros((5, 5))
            psf[2, 2] = 1.0
            images[kind] = write_exposure(Exposure(img, np.full_like(img, 100.0),
                                                   np.zeros((ny, nx), np.int32), psf, wcs, info))
        return cat, images

    return build
