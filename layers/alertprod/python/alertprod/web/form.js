// The job form: which fields each target kind shows, and the request body it makes
// ({"target": {...}, "options": {...}} of the API). The API checks everything again; the
// checks here only spare a round trip for what is obviously missing.

export class FormError extends Error {}

/**
 * Pairs of numbers from pasted or uploaded CSV text, one per line, an optional header line:
 * positions ("ra, dec" in degrees), and the points of an SED table (read by the same rule).
 */
export function parsePositions(text, what = "positions", expected = '"ra, dec" in degrees') {
  const out = [];
  const lines = String(text || "").split(/\r?\n/);
  lines.forEach((line, k) => {
    const trimmed = line.trim();
    if (!trimmed || trimmed.startsWith("#")) return;
    const cells = trimmed.split(/[,;\s]+/).filter(Boolean);
    if (out.length === 0 && cells.some((c) => /^[A-Za-z_]/.test(c))) return; // a header line
    const [ra, dec] = cells.map(Number);
    if (cells.length < 2 || !Number.isFinite(ra) || !Number.isFinite(dec)) {
      throw new FormError(`${what}, line ${k + 1}: expected ${expected}, got "${trimmed.slice(0, 60)}"`);
    }
    out.push({ ra, dec });
  });
  return out;
}

function number(form, name, label, { required = true } = {}) {
  const raw = form.elements[name].value.trim();
  if (raw === "") {
    if (required) throw new FormError(`${label} is required`);
    return undefined;
  }
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new FormError(`${label}: not a number`);
  return value;
}

export function kindOf(form) {
  return form.elements.kind.value;
}

/** Show the fields of the chosen target kind, orbit form and SED; hide the rest. */
export function showFields(form) {
  const kind = kindOf(form);
  for (const box of form.querySelectorAll("[data-kind]")) {
    box.hidden = !box.dataset.kind.split(" ").includes(kind);
  }
  const by = form.elements.orbit_by.value;
  for (const el of form.querySelectorAll("[data-orbit]")) el.hidden = el.dataset.orbit !== by;
  const sed = form.elements.sed_kind.value;
  for (const el of form.querySelectorAll("[data-sed]")) el.hidden = el.dataset.sed !== sed;
}

function target(form) {
  const kind = kindOf(form);
  if (kind === "position") {
    return { kind, ra: number(form, "ra", "RA"), dec: number(form, "dec", "Dec") };
  }
  if (kind === "positions" || kind === "batch") {
    const positions = parsePositions(form.elements.positions.value);
    if (positions.length === 0) throw new FormError("positions: paste or upload at least one \"ra, dec\" line");
    return { kind, positions };
  }
  if (kind === "proper_motion") {
    return {
      kind, ra: number(form, "ra", "RA"), dec: number(form, "dec", "Dec"),
      pmra: number(form, "pmra", "pmRA"), pmdec: number(form, "pmdec", "pmDec"),
      parallax: number(form, "parallax", "parallax"), epoch: number(form, "epoch", "epoch"),
    };
  }
  if (kind === "orbit") {
    if (form.elements.orbit_by.value === "mpcorb") {
      const line = form.elements.mpcorb.value.replace(/\r?\n+$/, "");
      if (!line.trim()) throw new FormError("MPCORB line is required");
      return { kind, mpcorb: line };
    }
    const designation = form.elements.designation.value.trim();
    if (!designation) throw new FormError("designation is required");
    return { kind, designation };
  }
  throw new FormError(`unknown target kind ${kind}`);
}

function options(form) {
  const out = {
    stamps: form.elements.stamps.checked,
    images: form.elements.images.value,
  };
  const lo = number(form, "mjd_min", "From MJD", { required: false });
  const hi = number(form, "mjd_max", "To MJD", { required: false });
  if (lo !== undefined) out.mjd_min = lo;
  if (hi !== undefined) out.mjd_max = hi;
  const sed = form.elements.sed_kind.value;
  if (sed === "power_law") out.sed = { kind: sed, alpha: number(form, "sed_alpha", "α") };
  if (sed === "blackbody") out.sed = { kind: sed, temperature_k: number(form, "sed_temperature", "temperature") };
  if (sed === "table") {
    const points = parsePositions(form.elements.sed_table.value, "SED table", '"wavelength, flux"').map((p) => [p.ra, p.dec]);
    if (points.length < 2) throw new FormError("SED table: at least two \"wavelength, flux\" lines");
    out.sed = {
      kind: sed, wavelength_angstrom: points.map((p) => p[0]), flux: points.map((p) => p[1]),
      flux_per: form.elements.sed_flux_per.value,
    };
  }
  return out;
}

/** The API request body of the form, or a FormError naming the field. */
export function buildRequest(form) {
  return { target: target(form), options: options(form) };
}

/** A one-line description of a job's target, for the job list. */
export function describeTarget(t) {
  if (!t || typeof t !== "object") return "?";
  const f = (x) => (typeof x === "number" ? x.toFixed(5) : "?");
  switch (t.kind) {
    case "position": return `${f(t.ra)}, ${f(t.dec)}`;
    case "positions": return `${(t.positions || []).length} positions (region)`;
    case "batch": return `batch of ${(t.positions || []).length}`;
    case "proper_motion": {
      const g = (x) => (typeof x === "number" ? x.toFixed(1) : "?");
      return `${f(t.ra)}, ${f(t.dec)} · μ ${g(t.pmra)}, ${g(t.pmdec)} mas/yr · ϖ ${g(t.parallax)} mas`;
    }
    case "orbit": return t.designation ? `asteroid ${t.designation}` : "asteroid (MPCORB line)";
    default: return String(t.kind || "?");
  }
}
