// The one door to the HTTP API. Every request of the viewer goes through `api`, so adding a
// bearer token later (or a base URL) is a change in this file only.

let bearer = null;

/** Set (or clear with null) the bearer token sent with every request. */
export function setToken(token) {
  bearer = token || null;
}

/** An HTTP error with the API's JSON error body: detail, field, limit. */
export class ApiError extends Error {
  constructor(status, body) {
    const detail = formatDetail(body && body.detail);
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
    this.field = body && body.field != null ? String(body.field) : null;
    this.limit = body && body.limit != null ? body.limit : null;
  }
}

// FastAPI's own validation errors carry a list of {loc, msg}; ours carry a string.
function formatDetail(detail) {
  if (detail == null) return "";
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) {
    return detail
      .map((d) => (d && d.loc ? `${d.loc.filter((p) => p !== "body").join(".")}: ${d.msg}` : String(d)))
      .join("; ");
  }
  return JSON.stringify(detail);
}


/**
 * Absolute URL of API path `path` ("/v1/..."), resolved against the page's own location so
 * the viewer also works when the service sits under a path prefix behind a proxy.
 */
export function apiUrl(path) {
  return new URL(path.replace(/^\//, ""), document.baseURI).href;
}

/**
 * Request API path `path` ("/v1/..."). `json` is sent as the JSON body; `as` picks the
 * result: "json" (default), "buffer" (ArrayBuffer) or "response".
 */
export async function api(path, { method = "GET", json, as = "json", signal } = {}) {
  const headers = { Accept: as === "json" ? "application/json" : "*/*" };
  if (json !== undefined) headers["Content-Type"] = "application/json";
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  const res = await fetch(apiUrl(path), {
    method,
    headers,
    body: json === undefined ? undefined : JSON.stringify(json),
    signal,
  });
  if (!res.ok) {
    let body = null;
    try {
      body = await res.json();
    } catch {
      body = { detail: `${res.status} ${res.statusText}` };
    }
    throw new ApiError(res.status, body);
  }
  if (as === "buffer") return res.arrayBuffer();
  if (as === "response") return res;
  return res.json();
}

/**
 * Open the job's Server-Sent Events stream. EventSource cannot send headers: when the API
 * requires a token this becomes a fetch-based reader (or a token query parameter), here.
 */
export function openEvents(jobId) {
  return new EventSource(apiUrl(jobPath(jobId, "/events")));
}

/** The URL path of a job resource, e.g. jobPath(id, "/frames/0/export?format=smv"). */
export function jobPath(jobId, rest = "") {
  return `/v1/jobs/${encodeURIComponent(jobId)}${rest}`;
}
