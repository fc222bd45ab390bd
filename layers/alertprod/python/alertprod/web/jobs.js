// The caller's jobs: the list (phase, progress from unit counts, queue position, ETA), kept
// current by polling the job document with ?wait= (UWS WAIT), and the chosen job's results:
// the light-curve plot (the API's SVG), the stamp gallery and the downloads.

import { api, ApiError, session } from "./api.js";
import { describeTarget } from "./form.js";
import { showStamps } from "./stamps.js";

const FINAL = new Set(["COMPLETED", "ERROR", "ABORTED"]);
/** Seconds a poll of the selected job may wait for a phase change (the API caps it). */
const WAIT_S = 5;
/** How often the list is read again while other jobs run, ms. */
const LIST_EVERY_MS = 4000;
const $ = (id) => document.getElementById(id);

export const state = { jobs: new Map(), selected: null, watching: new Set(), stampUrls: [], rows: [], onError: null };

const jobPath = (id) => `api/precovery/jobs/${encodeURIComponent(id)}`;

/** Units done and in all, from whichever unit counts the job document carries. */
export function unitCounts(job) {
  const u = job.units || job.progress || {};
  const total = u.total ?? job.unitsTotal ?? job.nUnits;
  const done = u.done ?? u.completed ?? u.finished ?? job.unitsDone;
  return Number.isFinite(total) && total > 0 ? { done: Math.min(done || 0, total), total } : null;
}

function when(iso) {
  if (!iso) return "";
  const t = new Date(iso);
  return Number.isNaN(t.getTime()) ? String(iso) : t.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function eta(job) {
  if (FINAL.has(job.phase)) return job.endTime ? `ended ${when(job.endTime).slice(11)}` : "";
  const parts = [];
  // a PENDING job is not planned yet: how many images it needs, and so its ETA, is unknown
  if (job.phase === "PENDING" && !job.eta) parts.push("waiting to be planned");
  if (job.phase === "QUEUED" && job.queuePosition != null) parts.push(`#${job.queuePosition} in queue`);
  if (job.eta) {
    const s = Math.max(0, Math.round((new Date(job.eta) - Date.now()) / 1000));
    parts.push(s < 2 ? "ETA: due now" : s < 90 ? `ETA ${s} s` : s < 5400 ? `ETA ${Math.round(s / 60)} min` : `ETA ${when(job.eta)}`);
  }
  return parts.join(" · ");
}

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text); else td.textContent = text ?? "";
  return td;
}

function button(label, cls, onClick, name) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = label;
  if (name) b.setAttribute("aria-label", name);
  b.addEventListener("click", onClick);
  return b;
}

function progressCell(job) {
  const counts = unitCounts(job);
  const bar = document.createElement("progress");
  bar.max = counts ? counts.total : 1;
  if (counts) bar.value = counts.done;
  else if (FINAL.has(job.phase)) bar.value = job.phase === "COMPLETED" ? 1 : 0;
  else bar.removeAttribute("value"); // indeterminate while the plan is not known
  bar.setAttribute("aria-label", counts ? `${counts.done} of ${counts.total} images measured` : `job ${job.phase.toLowerCase()}`);
  const wrap = document.createElement("span");
  wrap.append(bar);
  if (counts) wrap.append(` ${counts.done}/${counts.total}`);
  return wrap;
}

function row(job) {
  const tr = document.createElement("tr");
  tr.dataset.jobId = job.jobId;
  tr.dataset.phase = job.phase;
  if (job.jobId === state.selected) tr.className = "selected";
  const open = button(job.jobId, "linkish", () => select(job.jobId), `show job ${job.jobId}`);
  const phase = document.createElement("span");
  phase.className = `phase phase-${job.phase}`;
  phase.textContent = job.phase;
  const actions = document.createElement("span");
  if (!FINAL.has(job.phase)) actions.append(button("Abort", "danger", () => abort(job.jobId), `abort job ${job.jobId}`));
  actions.append(button("Delete", "secondary", () => remove(job.jobId), `delete job ${job.jobId}`));
  tr.append(cell(open), cell(describeTarget((job.parameters || {}).target)), cell(phase),
    cell(progressCell(job)), cell(eta(job)), cell(when(job.creationTime)), cell(actions, "actions-cell"));
  return tr;
}

export function render() {
  const jobs = [...state.jobs.values()].sort((a, b) => String(b.creationTime).localeCompare(String(a.creationTime)));
  // the rows are drawn anew on every update: keep the keyboard focus on the same button
  const focused = $("jobs-body").contains(document.activeElement) ? document.activeElement.getAttribute("aria-label") : null;
  $("jobs-body").replaceChildren(...jobs.map(row));
  if (focused) {
    const again = [...$("jobs-body").querySelectorAll("button")].find((b) => b.getAttribute("aria-label") === focused);
    if (again) again.focus();
  }
  $("jobs-table").hidden = jobs.length === 0;
  $("jobs-empty").hidden = jobs.length > 0;
  if (state.selected && state.jobs.has(state.selected)) renderFacts(state.jobs.get(state.selected));
}

function fail(err) {
  if (state.onError) state.onError(err);
}

/** Record a job document; start watching it when it is still running. */
export function update(job) {
  const before = state.jobs.get(job.jobId);
  state.jobs.set(job.jobId, job);
  render();
  if (!FINAL.has(job.phase) && job.jobId === state.selected) watch(job.jobId);
  else schedule();
  if (job.jobId === state.selected && before && before.phase !== job.phase && job.phase === "COMPLETED") {
    showResults(job).catch(fail);
  }
}

export async function refresh() {
  const body = await api("api/precovery/jobs");
  const jobs = Array.isArray(body) ? body : body.jobs || [];
  const seen = new Set(jobs.map((j) => j.jobId));
  for (const id of [...state.jobs.keys()]) if (!seen.has(id)) state.jobs.delete(id);
  for (const job of jobs) state.jobs.set(job.jobId, job);
  render();
  schedule();
}

let timer = null;

/** While any job runs, read the list again every few seconds (the selected job is watched). */
function schedule() {
  if (timer !== null) return;
  const running = [...state.jobs.values()].some((j) => !FINAL.has(j.phase) && j.jobId !== state.selected);
  if (!running) return;
  timer = setTimeout(() => {
    timer = null;
    if (session.token) refresh().catch(fail);
  }, LIST_EVERY_MS);
}

/** Poll the selected job with ?wait= until its phase is final or another is selected. */
async function watch(id) {
  if (state.watching.has(id)) return;
  state.watching.add(id);
  try {
    for (;;) {
      if (state.selected !== id || !session.token) break;
      const job = await api(`${jobPath(id)}?wait=${WAIT_S}`);
      const old = state.jobs.get(id);
      update(job);
      if (FINAL.has(job.phase)) break;
      if (old && old.phase === job.phase) await new Promise((r) => setTimeout(r, 500));
    }
  } catch (err) {
    if (!(err instanceof ApiError && err.status === 404)) fail(err);
    else { state.jobs.delete(id); render(); }
  } finally {
    state.watching.delete(id);
  }
}

async function abort(id) {
  try {
    update(await api(`${jobPath(id)}/phase`, { method: "POST", json: { PHASE: "ABORT" } }));
  } catch (err) { fail(err); }
}

async function remove(id) {
  if (!window.confirm(`Delete job ${id} and its results?`)) return;
  try {
    await api(jobPath(id), { method: "DELETE" });
    state.jobs.delete(id);
    if (state.selected === id) { state.selected = null; $("job").hidden = true; }
    render();
  } catch (err) { fail(err); }
}

function renderFacts(job) {
  $("job-title").textContent = `Job ${job.jobId}`;
  const facts = [["Phase", job.phase], ["Target", describeTarget((job.parameters || {}).target)],
    ["Options", JSON.stringify((job.parameters || {}).options || {})], ["Created", when(job.creationTime)],
    ["Started", when(job.startTime)], ["Ended", when(job.endTime)], ["Queue / ETA", eta(job)]];
  const counts = unitCounts(job);
  if (counts) facts.push(["Images measured", `${counts.done} of ${counts.total}`]);
  $("job-facts").replaceChildren(...facts.filter(([, v]) => v).flatMap(([k, v]) => {
    const dt = document.createElement("dt"); dt.textContent = k;
    const dd = document.createElement("dd"); dd.textContent = v;
    return [dt, dd];
  }));
  const message = (job.errorSummary && job.errorSummary.message) || (Array.isArray(job.errors) && job.errors.join("; "));
  $("job-error").hidden = !message;
  $("job-error").textContent = message ? `The job failed: ${message}` : "";
  $("downloads").hidden = job.phase !== "COMPLETED";
  $("downloads").querySelector("[data-download=stamps]").hidden = !((job.parameters || {}).options || {}).stamps;
}

export async function select(id) {
  state.selected = id;
  delete $("job").dataset.shown; // set again once this job's plot and stamps are in place
  $("job").hidden = false;
  $("plot-area").hidden = true;
  $("stamps-area").hidden = true;
  render();
  const job = state.jobs.get(id) || (await api(jobPath(id)));
  renderFacts(job);
  if (!FINAL.has(job.phase)) watch(id);
  if (job.phase === "COMPLETED") await showResults(job);
  $("job").scrollIntoView({ block: "start" });
}

let zip = null;

async function showResults(job) {
  const id = job.jobId;
  const { rows } = await api(`${jobPath(id)}/results/lightcurve?format=json`);
  if (state.selected !== id) return;
  state.rows = rows;
  const targets = [...new Set(rows.map((r) => r.target))].sort((a, b) => a - b);
  const pick = $("target-select");
  pick.replaceChildren(...targets.map((t) => new Option(`${t}`, String(t))));
  $("target-pick").hidden = targets.length < 2;
  pick.onchange = () => showTarget(id, Number(pick.value)).catch(fail);
  zip = null;
  state.stampUrls.forEach((u) => URL.revokeObjectURL(u));
  state.stampUrls = [];
  if (((job.parameters || {}).options || {}).stamps) {
    const response = await api(`${jobPath(id)}/results/stamps`, { raw: true });
    zip = await response.arrayBuffer();
  }
  await showTarget(id, targets.length ? targets[0] : 0, rows.length);
}

async function showTarget(id, target, count) {
  const response = await api(`${jobPath(id)}/results/lightcurve.svg?target=${target}`, { raw: true });
  const doc = new DOMParser().parseFromString(await response.text(), "image/svg+xml");
  const svg = document.importNode(doc.documentElement, true);
  svg.removeAttribute("width");
  svg.removeAttribute("height");
  $("plot").replaceChildren(svg);
  $("plot").setAttribute("aria-label", `light curve of target ${target}, per band`);
  $("plot-area").hidden = false;
  if (count === 0) $("plot").dataset.empty = "1";
  svg.addEventListener("click", (event) => {
    const a = event.target.closest("a.point");
    if (!a) return;
    event.preventDefault();
    highlight(a);
  });
  if (zip) {
    $("stamps-area").hidden = false;
    $("stamps-status").textContent = "Unpacking stamps…";
    const shown = await showStamps(zip, $("stamps"), { target });
    state.stampUrls.push(...shown.urls);
    $("stamps-status").textContent = shown.total > shown.shown
      ? `${shown.shown} of ${shown.total} stamps shown; download the archive for all (PNG and FITS).`
      : `${shown.total} stamps (PNG previews; the archive holds the FITS files with their WCS).`;
  }
  if (state.selected === id) $("job").dataset.shown = id;
}

function highlight(anchor) {
  document.querySelectorAll("#plot a.point.active").forEach((a) => a.classList.remove("active"));
  const row = anchor.dataset.row;
  document.querySelectorAll(`#plot a.point[data-row="${row}"]`).forEach((a) => a.classList.add("active"));
  const picked = state.rows[Number(row)];
  const same = (li) => picked !== undefined && li.dataset.visit === String(picked.visit)
    && li.dataset.detector === String(picked.detector);
  document.querySelectorAll("#stamps li").forEach((li) => li.classList.toggle("active", same(li)));
  const hit = document.querySelector("#stamps li.active");
  if (hit) hit.scrollIntoView({ block: "nearest" });
}

const FORMATS = {
  csv: ["results/lightcurve?format=csv", "csv"], json: ["results/lightcurve?format=json", "json"],
  votable: ["results/lightcurve?format=votable", "vot.xml"], stamps: ["results/stamps", "stamps.zip"],
};

/** Save one result of the selected job as a file (fetched with the token, then saved). */
export async function download(kind) {
  const id = state.selected;
  const [path, ext] = FORMATS[kind];
  const response = await api(`${jobPath(id)}/${path}`, { raw: true });
  const blob = await response.blob();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = `precovery-${id}.${ext}`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 60_000);
}
