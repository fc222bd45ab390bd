"""The precovery page in a real browser, on ``alertprod serve --replay`` of a small survey.

A three-night survey (one visit a night) is replayed with a two-day image cache, so that
epochs need re-created difference images. A person's session is played in Chromium: sign in
with a token the command printed, submit each target kind from the form (a variable star, two
positions 2″ apart, a batch uploaded as CSV, a high-proper-motion star, an asteroid by its
MPCORB line and one by designation), watch the jobs complete, and check what the page shows
against the API: the plotted points are the API's rows, the stamps are images, the downloads
parse to the same rows. Set ``ALERTPROD_SCREENSHOTS=DIR`` to keep the screenshots taken on
the way.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np
import pytest
from astropy.table import Table
from astropy.time import Time
from browser import chromium_browser

from alertprod.sky import simulate_survey
from alertprod.sky.presets import get_preset

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ALERTPROD = Path(sys.executable).with_name("alertprod")
KINDS = ("position", "positions", "batch", "proper_motion")
#: Longest wait for every job to complete, s (the embedded stack runs one invocation at a time).
JOBS_TIMEOUT_S = 900


def shot(page, name: str, **kwargs) -> None:
    folder = os.environ.get("ALERTPROD_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"precovery-{name}.png"), **kwargs)


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    root = tmp_path_factory.mktemp("page") / "survey"
    config = get_preset("tiny", n_nights=3, visits_per_night=1, n_ccd_y=1)
    simulate_survey(root, config=config, seed=5, progress=False)
    return root


@pytest.fixture(scope="module")
def server(survey):
    """``alertprod serve --replay``: its URL and the two demo users' tokens."""
    proc = subprocess.Popen([str(ALERTPROD), "serve", "--port", "0", "--replay", str(survey),
                             "--image-cache-days", "2", "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        assert lines[0].startswith("url: ") and all(x.startswith("token: ") for x in lines[1:]), lines
        served = {"url": lines[0][5:], "tokens": [x[7:] for x in lines[1:]]}
        call(served, "/api/precovery/jobs")  # the API function's cold start, before any page waits
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call(server, path: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(server["url"] + path)
    request.add_header("Authorization", f"Bearer {token or server['tokens'][0]}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def rows_of(server, job_id: str) -> list[dict]:
    status, body = call(server, f"/api/precovery/jobs/{job_id}/results/lightcurve?format=json")
    assert status == 200, body
    return json.loads(body)["rows"]


def truth(survey) -> Table:
    return Table.read(survey / "truth" / "objects.fits")


def submit(page, fill) -> str:
    """Fill the form with ``fill(page)``, submit, and return the new job's id."""
    fill(page)
    page.evaluate("document.getElementById('submit-status').textContent = ''; "
                  "document.getElementById('message').hidden = true")
    page.click("#submit-button")
    page.wait_for_function("document.getElementById('submit-status').textContent.includes('submitted')"
                           " || !document.getElementById('message').hidden")
    found = re.search(r"Job (\S+) submitted", page.text_content("#submit-status"))
    assert found, f"the page says: {page.text_content('#message')}"
    return found[1]


def forms(survey, tmp_path: Path) -> dict:
    """How to fill the form for each target kind, from the simulator's truth."""
    objects = truth(survey)
    variable = objects[objects["kind"] == "variable"][0]
    stars = objects[objects["kind"] == "star"]
    hpm = objects[objects["kind"] == "hpm_star"][0]
    asteroids = objects[objects["kind"] == "asteroid"]
    mpcorb = next(line for line in (survey / "mpcorb.dat").read_text().splitlines()
                  if asteroids[1]["designation"] in line)
    batch = tmp_path / "batch.csv"
    batch.write_text("ra,dec\n" + "".join(f"{r['ra']:.7f},{r['dec']:.7f}\n" for r in stars[:3]))

    def kind(page, value):
        page.check(f"input[name=kind][value={value}]")

    def position(page):
        kind(page, "position")
        page.fill("input[name=ra]", f"{variable['ra']:.7f}")
        page.fill("input[name=dec]", f"{variable['dec']:.7f}")

    def positions(page):  # the variable and a point 2″ from it: a small region
        kind(page, "positions")
        page.fill("#positions", f"{variable['ra']:.7f}, {variable['dec']:.7f}\n"
                                f"{variable['ra'] + 0.0005:.7f}, {variable['dec'] + 0.0003:.7f}\n")

    def batch_upload(page):
        kind(page, "batch")
        page.set_input_files("#positions-file", str(batch))
        page.wait_for_function("document.getElementById('positions').value.includes('ra,dec')")

    def proper_motion(page):
        kind(page, "proper_motion")
        for name in ("ra", "dec", "pmra", "pmdec", "parallax"):
            page.fill(f"input[name={name}]", f"{float(hpm[name]):.7f}")
        page.fill("input[name=epoch]", f"{Time(hpm['ref_epoch_mjd'], format='mjd', scale='tdb').jyear:.6f}")

    # an asteroid's images are found by integrating its orbit over the time range: a person
    # asks for the survey's span, not the default thirty years
    mjd = Table.read(survey / "truth" / "lightcurves.fits")["mjd"]
    span = (float(np.min(mjd)) - 1.0, float(np.max(mjd)) + 1.0)

    def survey_span(page):
        page.evaluate("document.querySelector('details.options').open = true")
        page.fill("input[name=mjd_min]", f"{span[0]:.3f}")
        page.fill("input[name=mjd_max]", f"{span[1]:.3f}")

    def orbit_designation(page):
        kind(page, "orbit")
        survey_span(page)
        page.check("input[name=orbit_by][value=designation]")
        page.fill("input[name=designation]", str(asteroids[0]["designation"]))

    def orbit_mpcorb(page):
        kind(page, "orbit")
        survey_span(page)
        page.check("input[name=orbit_by][value=mpcorb]")
        page.fill("textarea[name=mpcorb]", mpcorb)

    return {"position": position, "positions": positions, "batch": batch_upload,
            "proper_motion": proper_motion, "orbit_designation": orbit_designation,
            "orbit_mpcorb": orbit_mpcorb}


@pytest.fixture(scope="module")
def session(server, survey, tmp_path_factory):
    """A signed-in page that submitted every target kind from the form and saw them complete."""
    with chromium_browser() as browser:
        # bypass_csp: Playwright's own waiting functions are evaluated strings, which the page's
        # Content-Security-Policy (script-src 'self') would refuse
        context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True,
                                      bypass_csp=True)
        context.set_default_timeout(60_000)  # one invocation at a time on the embedded stack
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(server["url"] + "/")
        shot(page, "signin")
        page.fill("#token", server["tokens"][0])
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#workspace", state="visible")
        fill = forms(survey, tmp_path_factory.mktemp("forms"))
        jobs = {}
        for name in KINDS:
            jobs[name] = submit(page, fill[name])
            if name == "batch":
                page.click("text=Options")
                shot(page, "submit-form", full_page=True)
                page.click("text=Options")
        shot(page, "running-job", full_page=True)
        start = time.monotonic()
        try:
            page.wait_for_function(
                "ids => ids.every(id => ['COMPLETED', 'ERROR', 'ABORTED'].includes("
                "document.querySelector(`tr[data-job-id='${id}']`)?.dataset.phase))",
                arg=list(jobs.values()), timeout=JOBS_TIMEOUT_S * 1000, polling=1000)
        except Exception as exc:
            phases = {name: page.get_attribute(f"tr[data-job-id='{j}']", "data-phase") for name, j in jobs.items()}
            raise AssertionError(f"jobs not final after {JOBS_TIMEOUT_S} s: {phases}") from exc
        yield {"page": page, "jobs": jobs, "errors": errors, "seconds": time.monotonic() - start,
               "context": context}
        context.close()


def show(page, job_id: str) -> None:
    page.click(f"tr[data-job-id='{job_id}'] button.linkish")
    # the page marks the job section once this job's plot and stamps are in place
    page.wait_for_function("id => document.getElementById('job').dataset.shown === id", arg=job_id)


def test_each_target_kind_submitted_from_the_form_completes(session, server):
    page = session["page"]
    for name, job_id in session["jobs"].items():
        assert page.get_attribute(f"tr[data-job-id='{job_id}']", "data-phase") == "COMPLETED", name
        status, body = call(server, f"/api/precovery/jobs/{job_id}")
        doc = json.loads(body)
        assert doc["phase"] == "COMPLETED" and doc["units"]["done"] == doc["units"]["total"], name
    targets = {name: json.loads(call(server, f"/api/precovery/jobs/{j}")[1])["parameters"]["target"]
               for name, j in session["jobs"].items()}
    assert targets["batch"]["kind"] == "batch" and len(targets["batch"]["positions"]) == 3
    for name in ("position", "positions", "batch", "proper_motion"):
        assert rows_of(server, session["jobs"][name]), f"{name}: no rows"
    assert session["errors"] == []


def plotted(page) -> dict[str, list[tuple[int, float, float]]]:
    """Per SVG group (panel and kind): (row, x, y) of each plotted point, from the browser."""
    found = page.evaluate("""() => [...document.querySelectorAll('#plot a.point')].map(a => {
        const b = a.getBBox();
        return [a.closest('g[id]').id, Number(a.dataset.row), b.x + b.width / 2, b.y + b.height / 2];
    })""")
    out: dict[str, list] = {}
    for gid, row, x, y in found:
        out.setdefault(gid, []).append((row, x, y))
    return out


@pytest.mark.parametrize("kind", ["position", "batch", "proper_motion"])
def test_plotted_points_are_the_api_rows(session, server, kind):
    page, job_id = session["page"], session["jobs"][kind]
    show(page, job_id)
    rows = rows_of(server, job_id)
    target = rows[0]["target"]
    mine = [k for k, r in enumerate(rows) if r["target"] == target]
    drawn = plotted(page)
    for quantity, column in (("psf", "psfFlux"), ("sci", "scienceFlux")):
        points = [p for gid, ps in drawn.items() if gid.startswith(quantity + "-") for p in ps]
        # the same rows: count, visits, detectors
        expect = [k for k in mine if rows[k][column] is not None or
                  (quantity == "psf" and rows[k]["upperLimit"] is not None)]
        assert sorted(p[0] for p in points) == sorted(expect)
        # in their band's panel, and drawn as re-created where the row says so
        for gid, ps in drawn.items():
            if gid.startswith(quantity + "-"):
                band = gid.split("-")[1]
                assert all(rows[k]["band"] == band for k, *_ in ps)
                assert all(rows[k]["recreated"] is gid.endswith("recreated") for k, *_ in ps)
        # at their fluxes: one linear map per panel from flux (or upper limit) to y
        for band in {rows[k]["band"] for k, *_ in points}:
            ps = [p for p in points if rows[p[0]]["band"] == band]
            value = np.array([rows[k]["upperLimit"] if quantity == "psf" and rows[k]["upperLimit"] is not None
                              else rows[k][column] for k, *_ in ps])
            y = np.array([p[2] for p in ps])
            if np.ptp(value) > 0:
                slope, offset = np.polyfit(value, y, 1)
                assert slope < 0 and np.max(np.abs(slope * value + offset - y)) < 0.5
            t = np.array([rows[k]["midpointMjdTai"] for k, *_ in ps])
            if np.ptp(t) > 0:
                slope, offset = np.polyfit(t - t.mean(), np.array([p[1] for p in ps]), 1)
                assert slope > 0
    if kind == "position":
        shot(page, "finished-job", full_page=True)


def test_stamps_render_as_images_one_per_row(session, server):
    page, job_id = session["page"], session["jobs"]["position"]
    show(page, job_id)
    page.wait_for_function("""() => {
        const imgs = [...document.querySelectorAll('#stamps img')];
        return imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0);
    }""", timeout=30_000)
    shown = page.evaluate("() => [...document.querySelectorAll('#stamps li')].map(li => "
                          "[Number(li.dataset.visit), Number(li.dataset.detector)])")
    rows = rows_of(server, job_id)
    assert sorted(map(tuple, shown)) == sorted((r["visit"], r["detector"]) for r in rows)
    # a click on a plotted point marks that epoch's stamp
    page.click("#plot a.point >> nth=0")
    active = page.evaluate("() => [...document.querySelectorAll('#stamps li.active')].length")
    assert active == 1


def download(page, kind: str) -> bytes:
    with page.expect_download() as info:
        page.click(f"#downloads [data-download={kind}]")
    return Path(info.value.path()).read_bytes()


def test_downloads_parse_to_the_api_rows(session, server):
    page, job_id = session["page"], session["jobs"]["position"]
    show(page, job_id)
    rows = rows_of(server, job_id)
    table = list(csv.DictReader(io.StringIO(download(page, "csv").decode())))
    assert [(int(r["visit"]), int(r["detector"]), float(r["psfFlux"])) for r in table] == \
        [(r["visit"], r["detector"], r["psfFlux"]) for r in rows]
    assert json.loads(download(page, "json"))["rows"] == rows
    votable = Table.read(io.BytesIO(download(page, "votable")), format="votable")
    assert list(votable["visit"]) == [r["visit"] for r in rows]
    with zipfile.ZipFile(io.BytesIO(download(page, "stamps"))) as z:
        names = z.namelist()
    assert len([n for n in names if n.endswith(".png")]) == len(rows)


def test_api_errors_reach_the_person_in_words(session):
    page = session["page"]
    page.check("input[name=kind][value=position]")
    page.fill("input[name=ra]", "10")
    page.fill("input[name=dec]", "95")
    page.click("#submit-button")
    page.wait_for_selector("#message", state="visible")
    assert "dec" in page.text_content("#message")
    page.fill("input[name=dec]", "4")


def test_abort_and_delete_from_the_list(session, server):
    page = session["page"]
    page.check("input[name=kind][value=batch]")
    page.fill("#positions", "\n".join(f"{10 + k * 0.001:.4f}, 4.0" for k in range(40)))
    job_id = submit(page, lambda p: None)
    page.click(f"tr[data-job-id='{job_id}'] button.danger")
    page.wait_for_function("id => document.querySelector(`tr[data-job-id='${id}']`)?.dataset.phase === 'ABORTED'",
                           arg=job_id, timeout=30_000)
    assert json.loads(call(server, f"/api/precovery/jobs/{job_id}")[1])["phase"] == "ABORTED"
    page.once("dialog", lambda d: d.accept())
    page.click(f"tr[data-job-id='{job_id}'] button.secondary")
    page.wait_for_function("id => !document.querySelector(`tr[data-job-id='${id}']`)", arg=job_id)
    assert call(server, f"/api/precovery/jobs/{job_id}")[0] == 404


def test_a_token_that_is_not_accepted_is_said_so(session, server):
    # a fresh context of the session's browser (one Playwright per thread): no token stored
    context = session["context"].browser.new_context(bypass_csp=True)
    try:
        page = context.new_page()
        page.set_default_timeout(60_000)
        page.goto(server["url"] + "/")
        page.fill("#token", "apt_not-a-token")
        page.click("#signin-form button[type=submit]")
        page.wait_for_selector("#message", state="visible")
        assert "not accepted" in page.text_content("#message")
        assert page.is_hidden("#workspace")
    finally:
        context.close()


def submit_and_complete(session, survey, tmp_path, kind: str) -> str:
    page = session["page"]
    job_id = submit(page, forms(survey, tmp_path)[kind])
    page.wait_for_function("id => ['COMPLETED', 'ERROR', 'ABORTED'].includes("
                           "document.querySelector(`tr[data-job-id='${id}']`)?.dataset.phase)",
                           arg=job_id, timeout=JOBS_TIMEOUT_S * 1000, polling=1000)
    assert page.get_attribute(f"tr[data-job-id='{job_id}']", "data-phase") == "COMPLETED"
    return job_id


def test_asteroid_by_mpcorb_line_submitted_from_the_form_completes(session, survey, server, tmp_path):
    job_id = submit_and_complete(session, survey, tmp_path, "orbit_mpcorb")
    target = json.loads(call(server, f"/api/precovery/jobs/{job_id}")[1])["parameters"]["target"]
    assert target["kind"] == "orbit" and "designation" not in target


def test_asteroid_by_designation_submitted_from_the_form_completes(session, survey, tmp_path):
    submit_and_complete(session, survey, tmp_path, "orbit_designation")
