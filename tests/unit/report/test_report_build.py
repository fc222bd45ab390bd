"""The night report: a synthetic export of 20 alerts becomes a static site whose links all resolve."""

from __future__ import annotations

import io
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from browser import chromium_browser
from matplotlib.image import imread

from alertprod.alerts import build_alert, write_alert_container
from alertprod.errors import ConfigError
from alertprod.report import build_report, read_alerts

N_ALERTS = 20
MAX_PAGES = 6  # the 6 largest S/N: i = 14..19
BANDS = "ugrizy"
EVIL = '<script>alert("x")</script> & "quoted"'
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _cutout(rng: np.random.Generator, flux: float, *, extension: bool) -> bytes:
    yy, xx = np.mgrid[:21, :21] - 10.0
    image = (flux * np.exp(-(xx**2 + yy**2) / 4.0) + rng.normal(0, 5, (21, 21))).astype(np.float32)
    hdus = (fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(image, name="IMAGE")]) if extension
            else fits.HDUList([fits.PrimaryHDU(image)]))
    buf = io.BytesIO()
    hdus.writeto(buf)
    return buf.getvalue()


def _alert(i: int, rng: np.random.Generator) -> dict:
    """Alert i: visit i // 4, every 5th a new object, every 7th a solar-system source."""
    sid = 1_000_000 + i
    visit, band = 100 + i // 4, BANDS[(i // 4) % 6]
    mjd = 60800.1 + 0.01 * (i // 4)
    ra, dec = (359.9 + 0.05 * i) % 360.0, -30.0 + 0.02 * i
    is_new, is_sso = i % 5 == 0, i % 7 == 3
    obj_id = sid if is_new else 500 + i
    src = {"diaSourceId": sid, "visit": visit, "detector": i % 3, "midpointMjdTai": mjd, "ra": ra,
           "dec": dec, "x": 100.0, "y": 200.0, "timeProcessedMjdTai": mjd + 0.001, "band": band,
           "psfFlux": 1000.0 * (i + 1), "psfFluxErr": 100.0, "snr": 10.0 * (i + 1) / 10 + 5,
           "reliability": 0.5 + i / 50, "diaObjectId": None if is_sso else obj_id,
           "ssObjectId": 9000 + i if is_sso else None}
    prv = [] if (is_new or is_sso) else [
        {**src, "diaSourceId": sid * 10 + k, "visit": 50 + k, "midpointMjdTai": mjd - 3.0 * (k + 1),
         "band": BANDS[k % 6], "psfFlux": 800.0 + 50 * k} for k in range(4)]
    forced = None if is_sso else [
        {"diaForcedSourceId": sid * 100 + k, "diaObjectId": obj_id, "ra": ra, "dec": dec,
         "visit": 10 + k, "detector": 1, "midpointMjdTai": mjd - 2.0 * (k + 1), "band": BANDS[k % 6],
         "psfFlux": 30.0 * k, "psfFluxErr": 90.0, "timeProcessedMjdTai": mjd} for k in range(6)]
    obj = None if is_sso else {
        "diaObjectId": obj_id, "validityStartMjdTai": mjd, "ra": ra, "dec": dec,
        "nDiaSources": 1 if is_new else 5, f"{band}_psfFluxMean": 1000.0, f"{band}_psfFluxNdata": 1}
    ss = {"diaSourceId": sid, "ssObjectId": 9000 + i, "eclLambda": 1.0, "eclBeta": 2.0, "galLon": 3.0,
          "galLat": 4.0, "designation": "2024 AB"} if is_sso else None
    return build_alert(src, dia_object=obj, prv_dia_sources=prv, prv_dia_forced_sources=forced,
                       ss_source=ss, cutout_difference=_cutout(rng, 200.0, extension=True),
                       cutout_template=_cutout(rng, 20.0, extension=i % 2 == 0))


SUMMARY = {
    "visits": 5, "ccds": 15, "diaSources": 57, "newDiaObjects": 4, "updatedDiaObjects": 13,
    "ssoMatches": 3, "forcedSources": 88, "precoverySources": 6, "alerts": N_ALERTS, "quarantined": 2,
    "perCcd": [{"visit": 100 + k // 3, "detector": k % 3, "mjdTai": 60800.1 + 0.01 * (k // 3),
                "band": "r", "seconds": 1.0 + 0.1 * k,
                "stages": {"read": 0.2, "associate": 0.3 + 0.01 * k, "alerts": 0.5},
                "dynamodbRequests": 40 + k, "nDiaSources": 3 + k} for k in range(15)],
    "ccdSecondsP50": 1.7, "ccdSecondsP95": 2.33, "dynamodbRequestsPerCcd": 47.0,
    "filters": {"demo-alice": {"filter": "bright", "expression": "diaSource.snr > 20 AND " + EVIL,
                               "transport": "webhook", "unique_alerts": 7,
                               "counters": {"matched": 7, "delivered": 7, "failed": 0, "held": 0}}},
}


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("night")
    rng = np.random.default_rng(7)
    alerts = [_alert(i, rng) for i in range(N_ALERTS)]
    (out / "alerts").mkdir()
    for f in range(4):  # several containers of several records each
        with (out / "alerts" / f"{f:03d}.avro").open("wb") as fh:
            write_alert_container(alerts[f::4], fh)
    (out / "summary.json").write_text(json.dumps(SUMMARY))
    (out / "quarantine.json").write_text(json.dumps([
        {"key": "diasources/00000101/002.fits", "reason": EVIL, "detail": "column <psfFlux> missing"},
        {"key": "diasources/00000102/000.fits", "reason": "not_fits", "detail": "bad magic"}]))
    return out


@pytest.fixture(scope="module")
def built(export) -> Path:
    return build_report(export, max_alerts=MAX_PAGES)


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs: list[str] = []
        self.srcs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img":
            self.srcs.append(a["src"])
        if tag == "script":
            self.scripts += 1


def _parse(path: Path) -> _Links:
    parser = _Links()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def _local_targets(page: Path, refs: list[str]) -> list[Path]:
    return [(page.parent / r.split("#")[0]).resolve() for r in refs if r.split("#")[0]]


def test_report_index_is_written_in_the_export(built, export):
    assert built == export / "report" / "index.html"
    assert built.stat().st_size > 1000


def test_report_links_alert_pages_of_the_most_significant_alerts(built, export):
    pages = [h for h in _parse(built).hrefs if h.startswith("alerts/")]
    assert len(pages) == MAX_PAGES
    assert all((built.parent / h).is_file() for h in pages)
    ids = read_alerts(export / "alerts", max_full=0).rows
    top = sorted(ids, key=lambda r: -r.snr)[:MAX_PAGES]
    assert {f"alerts/{r.diaSourceId}.html" for r in top} == set(pages)
    assert f"{MAX_PAGES} of 20 alerts have a page" in built.read_text()


def test_report_every_link_and_image_resolves_to_a_file(built):
    pages = [built, *sorted((built.parent / "alerts").glob("*.html"))]
    for page in pages:
        links = _parse(page)
        for target in _local_targets(page, links.hrefs + links.srcs):
            assert target.is_file(), f"{page.name} links to missing {target}"


def test_report_pngs_are_valid_images(built):
    pngs = sorted((built.parent / "img").glob("**/*.png"))
    # 5 index figures + per page: light curve, difference and template cutouts
    assert len(pngs) == 5 + MAX_PAGES * 3
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_SIGNATURE
        image = imread(png)
        assert image.ndim == 3 and min(image.shape[:2]) >= 21


def test_report_cutout_png_keeps_the_cutout_shape_and_shows_the_source(built):
    png = next((built.parent / "img" / "alerts").glob("*_diff.png"))
    image = imread(png)
    assert image.shape[:2] == (21, 21)
    assert image[10, 10, 0] > np.median(image[..., 0])  # the point source is brighter than sky


def test_report_counts_equal_the_inputs(built):
    text = built.read_text()
    for key, value in SUMMARY.items():
        if isinstance(value, int):
            assert re.search(rf'id="count-{key}">{value}<', text), key
    assert 'id="count-alertsRead">20<' in text
    assert 'id="count-quarantineEntries">2<' in text
    assert 'id="count-alertsNew">3<' in text  # i = 0, 5, 15 (10 is a solar-system source)
    assert 'id="count-alertsSso">3<' in text  # i = 3, 10, 17
    rows = re.findall(r'<tr data-band="', text)
    assert len(rows) == N_ALERTS


def test_report_shows_what_each_filter_received(built):
    text = built.read_text()
    section = text[text.index('id="filters"'):text.index('id="quarantine"')]
    assert "demo-alice" in section and "webhook" in section and ">7<" in section
    assert "<script>" not in section and "&lt;script&gt;" in section  # the expression escaped


def test_report_escapes_a_malicious_quarantine_reason(built):
    text = built.read_text()
    assert '<script>alert("x")</script>' not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &quot;quoted&quot;" in text
    assert "column &lt;psfFlux&gt; missing" in text
    assert _parse(built).scripts == 1  # only the report's own inline script


def test_report_alert_page_shows_object_fields_and_sso(built, export):
    sso = built.parent / "alerts" / "1000017.html"  # i = 17: SSO and among the brightest
    text = sso.read_text()
    assert "Solar-system object" in text and "2024 AB" in text
    new = (built.parent / "alerts" / "1000015.html").read_text()  # i = 15: a new DiaObject
    assert "new DiaObject" in new and "Per-band summaries" in new
    assert "../img/alerts/1000015_lc.png" in new


def test_report_of_an_empty_export_still_opens(tmp_path):
    index = build_report(tmp_path)
    text = index.read_text()
    assert 'id="count-alertsRead">0<' in text and "No upload was quarantined" in text
    assert all(p.read_bytes()[:8] == PNG_SIGNATURE for p in (index.parent / "img").glob("*.png"))


def test_report_rejects_a_missing_directory_and_negative_max_alerts(tmp_path):
    with pytest.raises(ConfigError, match="out_dir"):
        build_report(tmp_path / "nope")
    with pytest.raises(ConfigError, match="max_alerts"):
        build_report(tmp_path, max_alerts=-1)


def test_report_index_renders_in_a_headless_browser(built, tmp_path):
    shot = tmp_path / "index.png"
    with chromium_browser() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.goto(built.as_uri())
        page.wait_for_load_state("load")
        broken = page.evaluate(
            "Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))"
            ".map(i => i.getAttribute('src'))")
        assert broken == []  # every plot and cutout loads
        assert page.locator("h1").first.inner_text().strip()
        page.screenshot(path=str(shot))
        alert_links = page.locator("a[href^='alerts/']")
        assert alert_links.count() > 0
        alert_links.first.click()
        page.wait_for_load_state("load")
        assert page.evaluate("Array.from(document.images).every(i => i.naturalWidth > 0)")
    image = imread(shot)
    assert image.shape[:2] == (1600, 1280)
    assert image[..., :3].std() > 0.05  # not a blank page


def test_report_copied_elsewhere_still_resolves(built, tmp_path):
    copy = tmp_path / "copied"
    shutil.copytree(built.parent, copy)
    for target in _local_targets(copy / "index.html", _parse(copy / "index.html").srcs):
        assert target.is_file() and copy in target.parents


def test_report_rebuild_in_worker_processes_replaces_the_earlier_pages(export, built):
    # last in the module: it changes the shared export's report
    index = build_report(export, max_alerts=2, workers=2)
    assert sorted(p.name for p in (index.parent / "alerts").glob("*.html")) == [
        "1000018.html", "1000019.html"]
    assert len(list((index.parent / "img" / "alerts").glob("*.png"))) == 2 * 3
    assert 'href="1000018.html"' in (index.parent / "alerts" / "1000019.html").read_text()
