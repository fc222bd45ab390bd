// The precovery service's page: sign in with a token, submit jobs, watch them, see results.
// Plain ES modules, no framework: api.js (calls and errors), form.js (the job form),
// jobs.js (the job list, polling, plot, downloads), stamps.js (the stamp gallery).

import { api, ApiError, session } from "./api.js";
import { buildRequest, FormError, parsePositions, showFields } from "./form.js";
import { download, refresh, select, state, update } from "./jobs.js";

const $ = (id) => document.getElementById(id);

function say(text, { info = false } = {}) {
  const box = $("message");
  box.textContent = text || "";
  box.classList.toggle("info", info);
  box.hidden = !text;
}

function onError(err) {
  if (err instanceof ApiError && (err.status === 401 || err.status === 403)) {
    signOut();
  }
  say(err && err.message ? err.message : String(err));
}
state.onError = onError;

function signOut() {
  session.token = "";
  state.jobs.clear();
  state.selected = null;
  $("workspace").hidden = true;
  $("who").hidden = true;
  $("signin").hidden = false;
  $("token").focus();
}

async function signIn(token) {
  session.token = token;
  await refresh(); // the first call checks the token: 401 means not accepted
  $("signin").hidden = true;
  $("workspace").hidden = false;
  $("who").hidden = false;
  $("who-name").textContent = `token …${token.slice(-6)}`;
  say("");
}

function wireSignIn() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) return say("Paste your API token first.");
    try {
      await signIn(token);
      $("token").value = "";
    } catch (err) {
      session.token = "";
      say(err.message);
    }
  });
  $("sign-out").addEventListener("click", () => { signOut(); say("Signed out.", { info: true }); });
}

function wireForm() {
  const form = $("job-form");
  form.addEventListener("change", () => showFields(form));
  showFields(form);
  const count = () => {
    try {
      const n = parsePositions(form.elements.positions.value).length;
      $("positions-count").textContent = n ? `${n} position${n === 1 ? "" : "s"}` : "";
    } catch (err) {
      $("positions-count").textContent = err.message;
    }
  };
  form.elements.positions.addEventListener("input", count);
  $("positions-file").addEventListener("change", async (event) => {
    const file = event.target.files[0];
    if (!file) return;
    form.elements.positions.value = await file.text();
    count();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let body;
    try {
      body = buildRequest(form);
    } catch (err) {
      if (err instanceof FormError) return say(err.message);
      throw err;
    }
    const submitButton = $("submit-button");
    submitButton.disabled = true;
    $("submit-status").textContent = "Submitting…";
    try {
      const job = await api("api/precovery/jobs", { method: "POST", json: body });
      say("");
      $("submit-status").textContent = `Job ${job.jobId} submitted.`;
      update(job);
      await select(job.jobId);
    } catch (err) {
      $("submit-status").textContent = "";
      onError(err);
    } finally {
      submitButton.disabled = false;
    }
  });
}

function wireDownloads() {
  $("downloads").addEventListener("click", (event) => {
    const kind = event.target.dataset && event.target.dataset.download;
    if (kind) download(kind).catch(onError);
  });
}

window.addEventListener("unhandledrejection", (event) => onError(event.reason));

wireSignIn();
wireForm();
wireDownloads();
if (session.token) {
  signIn(session.token).catch((err) => { signOut(); say(err.message); });
} else {
  $("signin").hidden = false;
}
