"""Write the bad-input corpus: uploads with one defect each, and the outcome each must have.

Run from the repository root (the corpus is committed; run this again after changing it):

    python tests/data/bad_inputs/make_corpus.py

Every file is made by the project's own writers (``write_diasource_catalog``,
``write_exposure``, ``compress_exposure``) from one good CCD — visit 1, detector 0, a 64 × 64
detector, 12 DiaSources — and then broken in one way: by the writer's inputs where the writer
can express the defect, through astropy where it cannot, by bytes where astropy refuses to
write it (a repeated column name, a non-ASCII header byte, a cut file). ``manifest.json`` lists
every case:

- ``file``: the defective file (``null`` for an image that is absent), relative to this folder;
- ``kind``: ``catalog`` or the image kind it replaces (``science``, ``difference``,
  ``template``, ``snapdiff``);
- ``expected``: the quarantine reason code (``alertprod.ingest.REASONS``), or ``processed``
  when the input is legal;
- ``defect``: the one thing wrong with it;
- optional ``key`` (the object key it is uploaded under, when not the base CCD's), ``base``
  (the CCD whose other files complete the upload, default ``good``) and ``after`` (CCDs
  processed before it: a reused id or a re-upload is only wrong against stored data).

Deterministic: the same script writes the same bytes (fixed seeds, fixed header cards).
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS

from alertprod.formats import (
    Exposure,
    ExposureInfo,
    diasource_key,
    image_key,
    write_diasource_catalog,
    write_exposure,
)
from alertprod.formats.catalog import MAX_CATALOG_ROWS
from alertprod.formats.compression import compress_exposure

HERE = Path(__file__).resolve().parent
NPIX = 64
N_SOURCES = 12
T1, T2 = 60000.10, 60001.10
KINDS = ("science", "difference", "template", "snapdiff")


def make_wcs(nx: int = NPIX, ny: int = NPIX) -> WCS:
    """A TAN WCS at (150°, 2°), 0.2″ pixels."""
    w = WCS(naxis=2)
    w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    w.wcs.crval = [150.0, 2.0]
    w.wcs.crpix = [(nx + 1) / 2, (ny + 1) / 2]
    w.wcs.cd = np.array([[-0.2 / 3600, 0], [0, 0.2 / 3600]])
    return w


def gaussian_psf(k: int = 7, sigma: float = 1.2) -> np.ndarray:
    r = np.arange(k) - (k - 1) / 2
    g = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    return g / g.sum()


def source_table(visit: int, *, n: int = N_SOURCES, seed: int = 1, ids=None) -> Table:
    rng = np.random.default_rng(seed)
    wcs = make_wcs()
    x, y = rng.uniform(8, NPIX - 8, n), rng.uniform(8, NPIX - 8, n)
    ra, dec = wcs.all_pix2world(x, y, 0)
    if ids is None:
        ids = visit * 1_000_000 + np.arange(1, n + 1, dtype=np.int64)
    return Table({"diaSourceId": np.asarray(ids, np.int64), "ra": ra, "dec": dec,
                  "raErr": np.full(n, 2e-5), "decErr": np.full(n, 2e-5), "x": x, "y": y,
                  "psfFlux": rng.uniform(3e3, 8e3, n), "psfFluxErr": np.full(n, 150.0),
                  "snr": rng.uniform(20, 50, n)})


def info(visit: int = 1, mjd: float = T1, **kw) -> ExposureInfo:
    return ExposureInfo(visit, kw.pop("detector", 0), kw.pop("band", "r"), mjd, 30.0, **kw)


def catalog(table: Table | None = None, *, visit: int = 1, mjd: float = T1,
            detsize=(NPIX, NPIX)) -> bytes:
    table = source_table(visit) if table is None else table
    return write_diasource_catalog(table, info(visit, mjd), make_wcs(), detsize)


def exposure(kind: str, *, visit: int = 1, mjd: float = T1, seed: int = 0, shape=(NPIX, NPIX),
             psf=None, **kw) -> Exposure:
    rng = np.random.default_rng(seed + KINDS.index(kind))
    img = rng.normal(0.0, 10.0, shape).astype(np.float32)
    return Exposure(img, np.full(shape, 100.0, np.float32), np.zeros(shape, np.int32),
                    gaussian_psf() if psf is None else psf, make_wcs(shape[1], shape[0]),
                    info(visit, mjd, **kw))


def image(kind: str, **kw) -> bytes:
    return write_exposure(exposure(kind, **kw))


# -- editing by astropy and by bytes ------------------------------------------------------------
def edit(data: bytes, change) -> bytes:
    """``data`` opened by astropy, changed in place by ``change(hdul)``, written again."""
    with fits.open(io.BytesIO(data)) as hdul:
        hdul = fits.HDUList([h.copy() for h in hdul])
    change(hdul)
    buf = io.BytesIO()
    hdul.writeto(buf, output_verify="ignore")
    return buf.getvalue()


def set_card(data: bytes, keyword: str, card: bytes, *, nth: int = 0) -> bytes:
    """Replace the ``nth`` 80-byte card of ``keyword`` by ``card`` (padded to 80 bytes)."""
    head = keyword.encode().ljust(8)
    hits = [i for i in range(0, len(data), 80) if data[i:i + 8] == head]
    i = hits[nth]
    return data[:i] + card.ljust(80)[:80] + data[i + 80:]


def header(**cards):
    def change(hdul):
        for k, v in cards.items():
            if v is None:
                del hdul[0].header[k]
            else:
                hdul[0].header[k] = v
    return change


def without(name: str):
    def change(hdul):
        del hdul[name]
    return change


def replace_hdu(name: str, data, hdr=None):
    def change(hdul):
        i = hdul.index_of(name)
        hdul[i] = fits.ImageHDU(data, header=hdr if hdr is not None else hdul[i].header, name=name)
    return change


def column(name: str, value):
    t = source_table(1)
    if value is None:
        del t[name]
    else:
        t[name] = value
    return catalog(t)


def row_value(name: str, row: int, value) -> bytes:
    t = source_table(1)
    col = np.array(t[name])
    col[row] = value
    t[name] = col
    return catalog(t)


def oversized() -> bytes:
    """One row over the limit, every row legal: all sources at the detector's centre."""
    n = MAX_CATALOG_ROWS + 1
    ra, dec = make_wcs().all_pix2world([NPIX / 2], [NPIX / 2], 0)
    t = Table({"diaSourceId": 1_000_000 + np.arange(1, n + 1, dtype=np.int64),
               "ra": np.full(n, ra[0]), "dec": np.full(n, dec[0]), "raErr": np.full(n, 2e-5),
               "decErr": np.full(n, 2e-5), "x": np.full(n, NPIX / 2), "y": np.full(n, NPIX / 2),
               "psfFlux": np.full(n, 5e3), "psfFluxErr": np.full(n, 150.0), "snr": np.full(n, 33.0)})
    return catalog(t)


# -- the cases ------------------------------------------------------------------------------------
def catalog_cases(good: bytes) -> list[tuple[str, bytes, str, str, dict]]:
    """(file name, bytes, expected, defect, extra manifest fields) of each catalog case."""
    t = source_table(1)
    ra_str = t["ra"].astype("U24")
    null_ids = MaskedColumn(np.array(t["diaSourceId"]), mask=[False] * 5 + [True] + [False] * 6)
    two_tables = edit(good, lambda h: h.insert(1, fits.ImageHDU(np.zeros((2, 2)), name="EXTRA")))
    dup = np.array(t["diaSourceId"])
    dup[4] = dup[3]
    shifted = np.array(t["ra"])
    shifted[2] += 10 / 3600
    reupload = source_table(1)
    reupload["psfFlux"][0] *= 1.5
    reused = source_table(2, seed=2, ids=source_table(1)["diaSourceId"])
    hostile = edit(good, header(BAND="<script>alert(1)</script>"))
    long_text = "'; DROP TABLE DiaSource; -- <img src=x onerror=alert(1)> " * 80
    wcs_less = edit(good, lambda h: [h[0].header.remove(k) for k in list(h[0].header)
                                     if k.startswith(("CTYPE", "CRVAL", "CRPIX", "CD", "PC",
                                                      "CUNIT", "CDELT", "WCSAXES", "LONPOLE",
                                                      "LATPOLE", "MJDREF", "RADESYS", "EQUINOX"))])
    cases = [
        ("good.fits", good, "processed", "none: the base CCD, as the contract says", {}),
        ("zero_length.fits", b"", "empty_file", "a zero-length object", {}),
        ("text_not_fits.fits", b"this is a DiaSource catalog, honestly\n", "not_fits",
         "ASCII text, not FITS", {}),
        ("png_not_fits.fits", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 20, "not_fits",
         "PNG bytes under a .fits key", {}),
        ("truncated_in_header.fits", good[:1500], "truncated_file",
         "cut inside the primary header", {}),
        ("truncated_in_rows.fits", good[:len(good) - 2880 + 700], "truncated_file",
         "cut inside the table rows (astropy raised TypeError here)", {}),
        ("no_table.fits", edit(good, without(1)), "missing_extension",
         "a primary HDU and nothing else", {}),
        ("image_in_extension_1.fits", two_tables, "missing_extension",
         "an image extension before the table: extension 1 is not a binary table", {}),
        ("extra_extension_after_table.fits",
         edit(good, lambda h: h.append(fits.ImageHDU(np.zeros((2, 2)), name="NOTES"))),
         "processed", "legal: an extension after the table is ignored", {}),
        ("extra_columns.fits", column("notInRubin", np.arange(N_SOURCES, dtype=float)), "processed",
         "legal: a column outside the Rubin schema is dropped", {}),
        ("zero_rows.fits", catalog(source_table(1)[:0]), "processed",
         "legal: a CCD without DiaSources (forced photometry still runs)", {}),
        ("missing_column_psfFluxErr.fits", column("psfFluxErr", None), "missing_column",
         "no psfFluxErr column", {}),
        ("duplicate_column_ra.fits", set_card(good, "TTYPE3", b"TTYPE3  = 'ra      '"),
         "duplicate_column", "the dec column renamed ra: two columns named ra", {}),
        ("ra_as_text.fits", column("ra", ra_str), "bad_column", "ra written as text", {}),
        ("id_as_float.fits", column("diaSourceId", np.array(t["diaSourceId"], float)), "bad_column",
         "diaSourceId written as float", {}),
        ("x_as_vector.fits", column("x", np.column_stack([t["x"], t["x"]])), "bad_column",
         "x holds two values per row", {}),
        ("nan_ra.fits", row_value("ra", 3, np.nan), "bad_value", "ra NaN in row 3", {}),
        ("inf_psfFlux.fits", row_value("psfFlux", 0, np.inf), "bad_value",
         "psfFlux +inf in row 0", {}),
        ("null_id.fits", column("diaSourceId", null_ids), "bad_value",
         "diaSourceId null (TNULL) in row 5", {}),
        ("dec_over_90.fits", row_value("dec", 1, 95.0), "bad_value", "dec 95 deg", {}),
        ("ra_over_360.fits", row_value("ra", 1, 400.0), "bad_value", "ra 400 deg", {}),
        ("negative_raErr.fits", row_value("raErr", 2, -1e-5), "bad_value", "raErr < 0", {}),
        ("zero_psfFluxErr.fits", row_value("psfFluxErr", 2, 0.0), "bad_value",
         "psfFluxErr = 0", {}),
        ("x_off_detector.fits", row_value("x", 4, NPIX + 10.0), "bad_value",
         "x outside DETSIZE", {}),
        ("negative_id.fits", row_value("diaSourceId", 0, -5), "bad_value", "diaSourceId < 0", {}),
        ("duplicate_ids.fits", column("diaSourceId", dup), "duplicate_id",
         "rows 3 and 4 share a diaSourceId", {}),
        ("position_off_wcs.fits", column("ra", shifted), "position_mismatch",
         "row 2's ra 10 arcsec from WCS(x, y)", {}),
        ("missing_MJD-MID.fits", edit(good, header(**{"MJD-MID": None})), "missing_header",
         "no MJD-MID", {}),
        ("missing_DETSIZE1.fits", edit(good, header(DETSIZE1=None)), "missing_header",
         "no DETSIZE1", {}),
        ("band_q.fits", edit(good, header(BAND="q")), "bad_header", "BAND 'q'", {}),
        ("visit_as_text.fits", edit(good, header(VISIT="00000001")), "bad_header",
         "VISIT written as a string", {}),
        ("mjd_implausible.fits", edit(good, header(**{"MJD-MID": 1.0e9})), "bad_header",
         "MJD-MID 1e9", {}),
        ("exptime_negative.fits", edit(good, header(EXPTIME=-30.0)), "bad_header",
         "EXPTIME -30 s", {}),
        ("detsize_zero.fits", edit(good, header(DETSIZE1=0)), "bad_header", "DETSIZE1 = 0", {}),
        ("timesys_local.fits", edit(good, header(TIMESYS="LOCAL")), "bad_time_scale",
         "TIMESYS 'LOCAL'", {}),
        ("no_wcs.fits", wcs_less, "bad_wcs", "the primary header's WCS cards removed", {}),
        ("header_says_visit_3.fits", catalog(source_table(3), visit=3), "key_mismatch",
         "VISIT 3 uploaded under visit 1's key", {}),
        ("hostile_band.fits", hostile, "bad_header", "BAND holds an HTML script tag", {}),
        ("hostile_long_object.fits", edit(good, header(OBJECT=long_text)), "processed",
         "legal: a 4,600-character OBJECT card of SQL and HTML (CONTINUE cards), not read", {}),
        ("non_ascii_header_byte.fits",
         set_card(good, "BAND", b"BAND    = 'r       '           / filter b\xe9nd"), "bad_header",
         "a non-ASCII byte in a header card (not FITS)", {}),
        ("over_row_limit.fits", oversized(), "too_many_rows",
         f"{MAX_CATALOG_ROWS + 1} legal rows, one over the limit", {}),
        ("unpadded_key.fits", good, "bad_key", "the good catalog under diasources/1/0.fits",
         {"key": "diasources/1/0.fits"}),
        ("reused_ids.fits", catalog(reused, visit=2, mjd=T2), "reused_id",
         "visit 2 reuses the diaSourceIds visit 1 stored",
         {"key": diasource_key(2, 0), "base": "good_visit2", "after": ["good"]}),
        ("reupload_other_content.fits", catalog(reupload), "already_processed",
         "visit 1 again, one flux changed, after visit 1 was processed", {"after": ["good"]}),
        ("reupload_same_content.fits", good, "processed",
         "legal: the same bytes again (a redelivery) is acknowledged, nothing redone",
         {"after": ["good"]}),
    ]
    return cases


def image_cases() -> list[tuple[str | None, str, bytes | None, str, str]]:
    """(file name, kind, bytes, expected, defect) of each image case (bytes None: absent)."""
    good_diff = image("difference")
    psf_even = gaussian_psf(6)
    psf_off = np.zeros((7, 7))
    psf_off[1, 1] = 1.0
    psf_nan = gaussian_psf()
    psf_nan[0, 0] = np.nan
    compressed = compress_exposure(exposure("difference"))

    return [
        (None, "science", None, "missing_image", "no science image in the cache"),
        (None, "difference", None, "missing_image", "no difference image in the cache"),
        (None, "template", None, "missing_image", "no template image in the cache"),
        ("difference_psf_missing.fits", "difference", edit(good_diff, without("PSF")),
         "missing_extension", "no PSF extension"),
        ("difference_psf_unnormalised.fits", "difference",
         image("difference", psf=2 * gaussian_psf()), "bad_psf", "PSF sums to 2"),
        ("difference_psf_even.fits", "difference", image("difference", psf=psf_even / psf_even.sum()),
         "bad_psf", "PSF 6 x 6"),
        ("difference_psf_off_centre.fits", "difference", image("difference", psf=psf_off),
         "bad_psf", "PSF peak 2 px off its central pixel"),
        ("science_psf_nan.fits", "science", image("science", psf=psf_nan), "bad_psf",
         "a NaN in the PSF"),
        ("difference_shape_not_detsize.fits", "difference", image("difference", shape=(64, 60)),
         "image_size_mismatch", "planes 60 x 64, DETSIZE 64 x 64"),
        ("template_shape_not_detsize.fits", "template", image("template", shape=(80, 80)),
         "image_size_mismatch", "planes 80 x 80, DETSIZE 64 x 64"),
        ("difference_negative_variance.fits", "difference",
         edit(good_diff, replace_hdu("VARIANCE", np.full((NPIX, NPIX), -100.0, np.float32))),
         "processed",
         "legal structure, every variance -100: pixels flagged BAD when read, warning "
         "negative_variance:difference:<n>"),
        ("difference_mask_missing.fits", "difference", edit(good_diff, without("MASK")),
         "missing_extension", "no MASK extension"),
        ("science_variance_missing.fits", "science", edit(image("science"), without("VARIANCE")),
         "missing_extension", "no VARIANCE extension"),
        ("difference_truncated.fits", "difference", good_diff[:len(good_diff) // 2],
         "truncated_file", "cut in the middle of its planes"),
        ("template_zero_length.fits", "template", b"", "empty_file", "a zero-length object"),
        ("science_not_fits.fits", "science", b"GIF89a" + bytes(3000), "not_fits",
         "GIF bytes under a .fits key"),
        ("difference_no_wcs.fits", "difference", edit(good_diff, replace_hdu("IMAGE", exposure("difference").image, fits.Header())),
         "bad_wcs",
         "IMAGE header without WCS"),
        ("difference_planes_differ.fits", "difference",
         edit(good_diff, replace_hdu("VARIANCE", np.full((32, 32), 100.0, np.float32))),
         "bad_image", "VARIANCE 32 x 32, IMAGE 64 x 64"),
        ("difference_mask_float.fits", "difference",
         edit(good_diff, replace_hdu("MASK", np.zeros((NPIX, NPIX), np.float32))),
         "bad_image", "MASK of float pixels"),
        ("difference_two_images.fits", "difference",
         edit(good_diff, lambda h: h.append(fits.ImageHDU(np.zeros((NPIX, NPIX), np.float32),
                                                          name="IMAGE"))),
         "duplicate_extension", "two IMAGE extensions"),
        ("difference_visit_5.fits", "difference", image("difference", visit=5), "image_mismatch",
         "header says visit 5"),
        ("science_band_g.fits", "science", image("science", band="g"), "image_mismatch",
         "band g, the catalog says r"),
        ("difference_timesys_local.fits", "difference",
         edit(good_diff, header(TIMESYS="LOCAL")), "bad_time_scale", "TIMESYS 'LOCAL'"),
        ("science_hostile_band.fits", "science",
         edit(image("science"), header(BAND="r\"); exec('import os')")), "bad_header",
         "BAND holds code"),
        ("template_other_visit.fits", "template", image("template", visit=999, mjd=59990.2),
         "processed", "legal: a template carries the visit it was built from"),
        ("difference_extra_extension.fits", "difference",
         edit(good_diff, lambda h: h.append(fits.ImageHDU(np.zeros((4, 4)), name="SKY"))),
         "processed", "legal: an extension beyond the four planes is ignored"),
        ("difference_tile_compressed.fits", "difference", compressed, "processed",
         "legal: tile-compressed planes (RICE_1)"),
        ("snapdiff_good.fits", "snapdiff", image("snapdiff"), "processed",
         "legal: the optional snap difference"),
        ("snapdiff_truncated.fits", "snapdiff", image("snapdiff")[:9000], "truncated_file",
         "the optional snap difference, cut short"),
    ]


def write_corpus(root: Path = HERE) -> dict:
    """Write every file and ``manifest.json`` under ``root``; return the manifest."""
    bases = {
        "good": {"catalog": catalog(), **{k: image(k) for k in KINDS[:3]}},
        "good_visit2": {"catalog": catalog(source_table(2, seed=2), visit=2, mjd=T2),
                        **{k: image(k, visit=2, mjd=T2) for k in KINDS[:3]}},
    }
    keys = {"good": diasource_key(1, 0), "good_visit2": diasource_key(2, 0)}
    manifest = {"schema": "alertprod.bad_inputs/1", "rowLimit": MAX_CATALOG_ROWS,
                "bases": {}, "cases": []}
    for name, files in bases.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        visit = 1 if name == "good" else 2
        entry = {"key": keys[name], "files": {}, "images": {}}
        for kind, data in files.items():
            (root / name / f"{kind}.fits").write_bytes(data)
            entry["files"][kind] = f"{name}/{kind}.fits"
            if kind != "catalog":
                entry["images"][kind] = image_key(visit, 0, kind)
        manifest["bases"][name] = entry
    (root / "catalog").mkdir(exist_ok=True)
    (root / "images").mkdir(exist_ok=True)
    for fname, data, expected, defect, extra in catalog_cases(bases["good"]["catalog"]):
        (root / "catalog" / fname).write_bytes(data)
        manifest["cases"].append({"name": f"catalog/{fname}", "file": f"catalog/{fname}",
                                  "kind": "catalog", "expected": expected, "defect": defect,
                                  **extra})
    for fname, kind, data, expected, defect in image_cases():
        rel = None
        if data is not None:
            rel = f"images/{fname}"
            (root / rel).write_bytes(data)
        manifest["cases"].append({"name": rel or f"images/missing_{kind}", "file": rel,
                                  "kind": kind, "expected": expected, "defect": defect})
    manifest["cases"].append({"name": "images/missing_all", "file": None, "kind": "all-images",
                              "expected": "missing_images",
                              "defect": "no science, difference or template image"})
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


if __name__ == "__main__":
    m = write_corpus()
    print(f"{len(m['cases'])} cases written under {HERE.name}/")
