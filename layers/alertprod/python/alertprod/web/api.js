// The precovery API as the page calls it: the bearer token from session storage on every
// request, and the API's {"error": "..."} bodies turned into messages a person can act on.

const KEY = "alertprod.precovery.token";

export const session = {
  get token() { return sessionStorage.getItem(KEY) || ""; },
  set token(value) {
    if (value) sessionStorage.setItem(KEY, value); else sessionStorage.removeItem(KEY);
  },
};

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A URL of the API, relative to the page (so that the page works under any base path). */
export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), document.baseURI).href;
}

async function explain(response) {
  let text = "";
  try {
    const body = await response.json();
    text = (body && (body.error || body.message)) || "";
  } catch {
    text = "";
  }
  // 401: no token reached the API; 403: API Gateway's authorizer refused it
  if (response.status === 401 || response.status === 403) return "The token was not accepted (unknown, revoked or expired): sign in again.";
  if (response.status === 429) {
    const retry = response.headers.get("Retry-After");
    return `${text || "Over your quota."}${retry ? ` Try again in ${retry} s.` : ""}`;
  }
  if (response.status === 404 && !text) return "Not found (deleted, or not yours).";
  return text || `The service answered ${response.status} ${response.statusText}.`;
}

/**
 * Call the API. Returns the parsed JSON (null for 204), or the Response when `raw`.
 * Throws ApiError with the API's own message for any 4xx/5xx.
 */
export async function api(path, { method = "GET", json, raw = false, signal } = {}) {
  const headers = { Authorization: `Bearer ${session.token}`, Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(apiUrl(path), { method, headers, body, signal });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "The service cannot be reached; check the connection and retry.");
  }
  if (!response.ok) throw new ApiError(response.status, await explain(response));
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}
