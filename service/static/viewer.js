// The viewer page: submit jobs, list them, watch one fill in over its event stream, and
// inspect it (contrast, zoom and pan over the pyramid, frame slider, pixel readout).

import { api, apiLink, jobPath, openEvents } from "./api.js";
import { Palette } from "./colour.js";
import { $, el, fmt } from "./dom.js";
import { beamCentre, resolutionAt, ring, ringResolutions } from "./geometry.js";
import { JobList } from "./joblist.js";
import { setupSubmitForm } from "./submit.js";
import { TileStore } from "./tiles.js";
import { FrameView } from "./view.js";

const FINAL = ["successful", "failed", "dismissed"];

// ---- state of the watched job ---------------------------------------------------------------

const watched = {
  job: null, // JobRecord
  events: null, // EventSource
  available: new Map(), // frame -> Set("row/col") of level-0 tiles in the store
  pyramid: new Set(), // frames whose pyramid levels are written
  tileMax: new Map(), // frame -> max over its tile events
  stats: new Map(), // frame -> frame statistics
};

const availability = {
  tile(frame, row, col) {
    if (watched.job && watched.job.status === "successful") return true;
    const set = watched.available.get(frame);
    return !!set && set.has(`${row}/${col}`);
  },
  pyramid(frame) {
    return (watched.job && watched.job.status === "successful") || watched.pyramid.has(frame);
  },
};

// The colormaps and scales of the service (the same tables colour its PNGs).
const palette = await loadPalette();
const store = new TileStore(palette, () => {
  view.requestDraw();
  scheduleStyle();
  if (pointer) showReadout(pointer.x, pointer.y);
});
const view = new FrameView($("canvas"), store, availability, afterDraw);
const jobList = new JobList(watch, (jobs) => {
  // A job not followed over its event stream (finished) takes its record from the list.
  const current = watched.job && jobs.find((j) => j.id === watched.job.id);
  if (current && !watched.events) setJob(current);
});
setupSubmitForm((record) => {
  watch(record.id, record);
  jobList.refresh();
});

// ---- watching a job -------------------------------------------------------------------------

async function watch(id, record = null) {
  if (watched.events) watched.events.close();
  Object.assign(watched, {
    job: null,
    events: null,
    available: new Map(),
    pyramid: new Set(),
    tileMax: new Map(),
    stats: new Map(),
  });
  store.reset(id);
  history.replaceState(null, "", `#job=${encodeURIComponent(id)}`);
  jobList.setActive(id);
  try {
    record = record || (await api(jobPath(id)));
  } catch (err) {
    if (store.jobId !== id) return;
    view.setJob(null);
    $("empty-hint").hidden = false;
    $("job-title").textContent = `Job ${id}: ${err.message}`;
    return;
  }
  if (store.jobId !== id) return; // another job was picked meanwhile
  $("empty-hint").hidden = true;
  watched.job = record;
  view.setJob(record);
  updateRings();
  setupFrames(record);
  setJob(record);
  listen(id);
}

async function listen(id, after = 0) {
  let source;
  try {
    source = await openEvents(id, after);
  } catch (err) {
    $("progress-text").textContent = `event stream: ${err.message}`;
    return;
  }
  if (store.jobId !== id) return source.close(); // another job was picked meanwhile
  if (watched.events) watched.events.close();
  watched.events = source;
  let last = after;
  let opened = false;
  source.onopen = () => (opened = true);
  const on = (type, handler) =>
    source.addEventListener(type, (e) => {
      if (watched.events !== source) return;
      last = Number(e.lastEventId) || last;
      handler(JSON.parse(e.data));
    });
  // A job already over (its record says so) replays its events: they must not turn it back.
  const settled = () => FINAL.includes(watched.job.status);
  on("status", (d) => settled() || setJob({ ...watched.job, ...d }));
  on("tile", (d) => {
    if (!watched.available.has(d.frame)) watched.available.set(d.frame, new Set());
    watched.available.get(d.frame).add(`${d.row}/${d.col}`);
    watched.tileMax.set(d.frame, Math.max(watched.tileMax.get(d.frame) ?? -Infinity, d.max));
    if (!settled()) {
      const status = watched.job.status === "accepted" ? "running" : watched.job.status;
      const progress = (100 * d.tiles_done) / Math.max(1, d.tiles_total);
      setJob({ ...watched.job, status, tiles_done: d.tiles_done, tiles_total: d.tiles_total, progress });
    }
    if (d.frame === view.frame) {
      view.requestDraw();
      scheduleStyle();
    }
  });
  on("frame", (d) => {
    watched.stats.set(d.frame, d.statistics || {});
    watched.pyramid.add(d.frame);
    if (d.frame === view.frame) {
      view.requestDraw();
      scheduleStyle();
      showStats();
    }
  });
  for (const type of FINAL) {
    on(type, (d) => {
      source.close();
      watched.events = null;
      setJob({ ...watched.job, status: d.status || type, message: d.message ?? watched.job.message });
      view.requestDraw();
      api(jobPath(id)).then((r) => watched.job && watched.job.id === r.id && setJob(r), () => {});
      jobList.refresh();
    });
  }
  source.onerror = () => {
    if (watched.events !== source) return;
    if (source.readyState === EventSource.CONNECTING) {
      $("progress-text").textContent = "reconnecting…";
    } else if (opened) {
      // refused on reconnecting (its ticket expired): open anew after the last event seen
      source.close();
      watched.events = null;
      $("progress-text").textContent = "reconnecting…";
      listen(id, last);
    } else {
      $("progress-text").textContent = "event stream closed; refresh the job list to update";
    }
  };
}

/** Show the job record `job` (status, progress, links). */
function setJob(job) {
  watched.job = job;
  const vp = $("viewport");
  vp.dataset.job = job.id;
  vp.dataset.status = job.status;
  const [h, w] = job.shape;
  $("job-title").textContent = `${job.id.slice(0, 8)} · ${w}×${h}${job.frames > 1 ? ` × ${job.frames} frames` : ""} · tile ${job.tile} · ${job.dtype}`;
  $("job-title").title = job.nanobragg || "";
  const badge = $("job-status");
  badge.textContent = job.status;
  badge.className = `badge ${job.status}`;
  const progress = job.progress ?? 0;
  $("progress-bar").style.width = `${progress}%`;
  $("progress").className = `progress ${job.status}`;
  $("progress").hidden = false;
  $("progress-text").textContent =
    job.status === "failed" && job.message
      ? job.message
      : `${job.tiles_done}/${job.tiles_total} tiles · ${Math.floor(progress)}%`;
  $("progress-text").title = job.message || "";
  $("cancel-job").hidden = FINAL.includes(job.status);
  updateLinks();
  afterDraw();
}

$("cancel-job").addEventListener("click", async () => {
  if (!watched.job) return;
  try {
    setJob(await api(jobPath(watched.job.id), { method: "DELETE" }));
  } catch (err) {
    $("progress-text").textContent = `cancel failed: ${err.message}`;
  }
  jobList.refresh();
});

function updateLinks() {
  const job = watched.job;
  const links = $("job-links");
  if (!job || job.status !== "successful") return links.replaceChildren();
  const f = view.frame;
  const a = (text, path, title) => apiLink(el("a", { title, target: "_blank" }, text), path);
  links.replaceChildren(
    a("float", jobPath(job.id, `/frames/${f}/export?format=float`), "C nanoBragg .float (raw floats)"),
    a("smv", jobPath(job.id, `/frames/${f}/export?format=smv`), "SMV image (.img)"),
    a("png", jobPath(job.id, `/frames/${f}/preview.png?${pngQuery()}`), "whole-frame picture with this contrast"),
    a("zarr", jobPath(job.id, "/zarr/zarr.json"), "the OME-Zarr store: zarr.open_group(<this URL without /zarr.json>)"),
    ...seriesLinks(job, a),
  );
}

/** Download links of the job's whole series: one NXmx file, or a zip of frame files. */
function seriesLinks(job, a) {
  const path = (format) => jobPath(job.id, `/export?format=${format}`);
  return [
    el("span", { class: "muted", title: "every frame, photons x 1 + 40 ADU" }, "series:"),
    a("nxs", path("nexus"), "all frames as one NXmx file (dials.import run.nxs)"),
    a("cbf.zip", path("cbf"), "zip of one mini-CBF per frame (JOB_00001.cbf, ...)"),
    a("smv.zip", path("smv"), "zip of one SMV image per frame"),
    a("float.zip", path("float"), "zip of one raw float32 file per frame"),
  ];
}

function pngQuery() {
  const { scale, vmin, vmax, colormap } = view.style;
  return new URLSearchParams({ scale, vmin, vmax, colormap }).toString();
}

// ---- frames ---------------------------------------------------------------------------------

function setupFrames(job) {
  const slider = $("frame");
  slider.max = String(Math.max(0, job.frames - 1));
  slider.value = "0";
  $("frame-label").textContent = `0 / ${job.frames - 1}`;
  $("frame-control").hidden = job.frames <= 1;
  showStats();
}

$("frame").addEventListener("input", () => {
  const f = Number($("frame").value);
  $("frame-label").textContent = `${f} / ${watched.job.frames - 1}`;
  view.setFrame(f);
  scheduleStyle();
  showStats();
  updateLinks();
});

function showStats() {
  const st = watched.stats.get(view.frame);
  if (!st) return ($("stats").textContent = "");
  const parts = [];
  if (st.max !== undefined) {
    const at = st.max_fast >= 0 ? ` at (${st.max_fast}, ${st.max_slow})` : "";
    parts.push(`max ${fmt(st.max)}${at}`);
  }
  for (const k of ["mean", "rms"]) if (st[k] !== undefined) parts.push(`${k} ${fmt(st[k])}`);
  $("stats").textContent = parts.join(" · ");
  $("stats").title = "frame statistics (photons per pixel); max at (fast, slow)";
}

/** Step the frame slider by `step` frames. */
function stepFrame(step) {
  const slider = $("frame");
  if (!watched.job || watched.job.frames <= 1) return;
  slider.value = String(Math.max(0, Math.min(watched.job.frames - 1, Number(slider.value) + step)));
  slider.dispatchEvent(new Event("input"));
}

// ---- contrast -------------------------------------------------------------------------------

async function loadPalette() {
  try {
    return new Palette(await api("/v1/colormaps"));
  } catch (err) {
    $("job-title").textContent = `colormaps: ${err.message}; reload the page`;
    throw err;
  }
}

for (const name of palette.names) $("colormap").append(el("option", { value: name }, name));
$("colormap").value = "inferno";
for (const name of palette.scaleNames) $("scale").append(el("option", { value: name }, name));
$("scale").value = "log";

/**
 * Automatic colour range of the shown frame: [0, frame max] (statistics or tile maxima), or
 * [p, q] percentiles of the loaded pixels for "q%" (p = 100 - q), which lifts spots off a
 * strong background such as water.
 */
function autoRange() {
  const frame = view.frame;
  const st = watched.stats.get(frame);
  let vmin = 0;
  let vmax = null;
  const mode = $("auto").value;
  if (mode !== "max") {
    let values = store.sample(frame, 0);
    if (!values.length) values = store.sample(frame, view.drawn.level);
    if (values.length) {
      const sorted = Float64Array.from(values).sort();
      const at = (q) => sorted[Math.min(sorted.length - 1, Math.floor((q / 100) * sorted.length))];
      vmin = at(100 - Number(mode));
      vmax = at(Number(mode));
    }
  }
  if (vmax === null && watched.job && watched.job.photons === false) {
    // level 0 holds the detector's ADU (a job without photons), the statistics photons:
    // the largest loaded pixel instead
    let values = store.sample(frame, 0);
    if (!values.length) values = store.sample(frame, view.drawn.level);
    if (values.length) vmax = values.reduce((a, b) => Math.max(a, b), -Infinity);
  }
  if (vmax === null) vmax = st && Number.isFinite(st.max) ? st.max : watched.tileMax.get(frame) ?? null;
  if (vmax === null || !(vmax > vmin)) vmax = vmin + 1;
  return { vmin, vmax };
}

let styleTimer = null;
function scheduleStyle() {
  if (styleTimer) return;
  styleTimer = setTimeout(() => {
    styleTimer = null;
    updateStyle();
  }, 150);
}

function updateStyle() {
  const auto = autoRange();
  $("vmin").placeholder = fmt(auto.vmin);
  $("vmax").placeholder = fmt(auto.vmax);
  $("vmin").title = `empty: automatic (${fmt(auto.vmin)})`;
  $("vmax").title = `empty: automatic, ${$("auto").selectedOptions[0].text} (${fmt(auto.vmax)})`;
  const typed = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  const vmin = typed("vmin") ?? auto.vmin;
  const vmax = typed("vmax") ?? auto.vmax;
  const bad = !(vmax > vmin);
  $("vmin").classList.toggle("invalid", bad);
  $("vmax").classList.toggle("invalid", bad);
  if (bad) return;
  const style = { vmin, vmax, scale: $("scale").value, colormap: $("colormap").value };
  $("colorbar").style.background = palette.cssGradient(style.colormap);
  $("colorbar").title = `${fmt(vmin)} … ${fmt(vmax)} (${style.scale})`;
  const s = view.style;
  if (s.vmin !== vmin || s.vmax !== vmax || s.scale !== style.scale || s.colormap !== style.colormap) {
    view.setStyle(style);
    updateLinks();
  }
}

for (const id of ["vmin", "vmax", "auto", "scale", "colormap"]) $(id).addEventListener("input", updateStyle);

// ---- resolution rings ----------------------------------------------------------------------

function updateRings() {
  const job = watched.job;
  const show = $("rings").checked && job && job.geometry;
  const ds = show ? ringResolutions(job.geometry, job.shape) : [];
  view.setRings(show ? { beam: beamCentre(job.geometry), rings: ds.map((d) => ({ d, points: ring(job.geometry, d) })) } : null);
  $("viewport").dataset.rings = ds.join(",");
}

$("rings").addEventListener("change", updateRings);

// ---- zoom, pan, cursor ----------------------------------------------------------------------

const canvas = $("canvas");
let pointer = null; // last CSS position over the canvas
let drag = null;

canvas.addEventListener(
  "wheel",
  (event) => {
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 33 : event.deltaMode === 2 ? 400 : 1;
    view.zoomAt(Math.exp((-event.deltaY * unit) / 500), event.offsetX, event.offsetY);
  },
  { passive: false },
);

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  drag = { x: event.clientX, y: event.clientY };
  canvas.setPointerCapture(event.pointerId);
  canvas.classList.add("dragging");
});

canvas.addEventListener("pointermove", (event) => {
  if (drag) {
    view.panBy(event.clientX - drag.x, event.clientY - drag.y);
    drag = { x: event.clientX, y: event.clientY };
  }
  pointer = { x: event.offsetX, y: event.offsetY };
  showReadout(pointer.x, pointer.y);
});

for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    drag = null;
    canvas.classList.remove("dragging");
  });
}

canvas.addEventListener("pointerleave", () => {
  pointer = null;
  showReadout(null, null);
});

canvas.addEventListener("dblclick", (event) => view.zoomAt(2, event.offsetX, event.offsetY));

const centre = () => [view.cssWidth / 2, view.cssHeight / 2];
$("zoom-in").addEventListener("click", () => view.zoomAt(1.5, ...centre()));
$("zoom-out").addEventListener("click", () => view.zoomAt(1 / 1.5, ...centre()));
$("zoom-fit").addEventListener("click", () => view.fit());
$("zoom-1").addEventListener("click", () => view.actualSize());

document.addEventListener("keydown", (event) => {
  if (event.target.closest("input, textarea, select") || event.ctrlKey || event.metaKey) return;
  if (event.key === "f") view.fit();
  else if (event.key === "1") view.actualSize();
  else if (event.key === "+" || event.key === "=") view.zoomAt(1.5, ...centre());
  else if (event.key === "-") view.zoomAt(1 / 1.5, ...centre());
  else if (event.key === "r") {
    $("rings").checked = !$("rings").checked;
    updateRings();
  } else if (event.key === "ArrowRight" || event.key === "PageDown") stepFrame(1);
  else if (event.key === "ArrowLeft" || event.key === "PageUp") stepFrame(-1);
});

function showReadout(x, y) {
  const out = $("readout");
  const p = x === null || !watched.job ? null : view.pixelAt(x, y);
  const before = view.hover;
  view.hover = p;
  if ((p && (!before || before.fast !== p.fast || before.slow !== p.slow)) || (!p && before)) view.requestDraw();
  for (const k of ["fast", "slow", "value", "resolution"]) delete out.dataset[k];
  if (!p) {
    out.textContent = "—";
    return;
  }
  const parts = [`fast ${p.fast}`, `slow ${p.slow}`];
  out.dataset.fast = p.fast;
  out.dataset.slow = p.slow;
  const v = view.valueAt(p.fast, p.slow);
  if (v) {
    parts.push(v.level === 0 ? `value ${fmt(v.value)}` : `value ≈${fmt(v.value)} (level ${v.level} mean)`);
    if (v.level === 0) out.dataset.value = v.value;
  } else {
    parts.push("value …");
  }
  if (watched.job.geometry) {
    const { d, twoTheta } = resolutionAt(watched.job.geometry, p.fast, p.slow);
    parts.push(`d ${Number.isFinite(d) ? d.toFixed(3) : "∞"} Å`, `2θ ${twoTheta.toFixed(2)}°`);
    out.dataset.resolution = d;
  }
  out.textContent = parts.join("   ");
}

// ---- status bar -----------------------------------------------------------------------------

function afterDraw() {
  const vp = $("viewport");
  const job = watched.job;
  const total = job ? job.grid[0] * job.grid[1] : 0;
  vp.dataset.frame = view.frame;
  vp.dataset.painted = view.painted.size;
  vp.dataset.total = total;
  vp.dataset.level = view.drawn.level;
  vp.dataset.missing = view.drawn.missing;
  vp.dataset.requests = store.requests;
  if (!job) return;
  const zoom = Math.round(view.scale * (window.devicePixelRatio || 1) * 100);
  $("view-info").textContent = `zoom ${zoom}% · level ${view.drawn.level} · ${view.painted.size}/${total} tiles`;
}

// ---- start ----------------------------------------------------------------------------------

new ResizeObserver(() => view.resize()).observe($("viewport"));
updateStyle();
jobList.refresh();
/** Watch the job a `#job=ID` link names, if it is not the one shown. */
function followHash() {
  const match = /job=([^&]+)/.exec(location.hash);
  const id = match && decodeURIComponent(match[1]);
  if (id && id !== store.jobId) watch(id);
}
window.addEventListener("hashchange", followHash);
followHash();
