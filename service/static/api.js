// The one door to the HTTP API. Every request of the viewer goes through `api`. When the
// service requires a bearer token, the first 401 asks the user for it (kept for the session).

const TOKEN_KEY = "braggtile-token";
let bearer = sessionStorage.getItem(TOKEN_KEY);

/** Set (or clear with null) the bearer token sent with every request. */
export function setToken(token) {
  bearer = token || null;
  if (bearer) sessionStorage.setItem(TOKEN_KEY, bearer);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Ask the user for the service's token after a 401; true if one was given. */
function askToken(detail) {
  const token = window.prompt(`${detail}. Enter the service's access token:`);
  if (!token) return false;
  setToken(token.trim());
  return true;
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
export async function api(path, options = {}) {
  const sent = bearer;
  try {
    return await request(path, options);
  } catch (err) {
    if (!(err instanceof ApiError) || err.status !== 401) throw err;
    // another request may have asked meanwhile: retry with its token rather than ask again
    if (bearer === sent && !askToken(err.detail)) throw err;
    return request(path, options);
  }
}

async function request(path, { method = "GET", json, as = "json", signal } = {}) {
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
 * Open the job's Server-Sent Events stream after event id `after` (0: from the start). An
 * EventSource cannot send headers: when the service wants a token, the URL carries a
 * short-lived ticket for this job's stream (POST .../events/ticket), never the token itself.
 */
export async function openEvents(jobId, after = 0) {
  const url = new URL(apiUrl(jobPath(jobId, "/events")));
  if (after > 0) url.searchParams.set("after", String(after));
  if (bearer) {
    const { ticket } = await api(jobPath(jobId, "/events/ticket"), { method: "POST" });
    url.searchParams.set("ticket", ticket);
  }
  return new EventSource(url.href);
}

/**
 * Make link `a` open API path `path`. Without a token it is a plain link; with one, a click
 * fetches the resource with the bearer header and saves it (no URL ever carries the token).
 */
export function apiLink(a, path) {
  a.href = apiUrl(path);
  a.addEventListener("click", async (event) => {
    if (!bearer) return;
    event.preventDefault();
    const res = await api(path, { as: "response" });
    const named = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "");
    const name = named ? named[1] : new URL(a.href).pathname.split("/").pop();
    const href = URL.createObjectURL(await res.blob());
    Object.assign(document.createElement("a"), { href, download: name }).click();
    setTimeout(() => URL.revokeObjectURL(href), 60_000);
  });
  return a;
}

/** The URL path of a job resource, e.g. jobPath(id, "/frames/0/export?format=smv"). */
export function jobPath(jobId, rest = "") {
  return `/v1/jobs/${encodeURIComponent(jobId)}${rest}`;
}
