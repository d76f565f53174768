// Tile pixels of the watched job: fetched as .npy, kept as typed arrays (for values under the
// cursor and recolouring), coloured lazily into small canvases that the view draws.

import { api, jobPath } from "./api.js";
import { parseNpy } from "./npy.js";

const CONCURRENCY = 6;
const MAX_BYTES = 384 * 1024 * 1024;
const RETRY_MS = 2000;

export class TileStore {
  /**
   * Tiles coloured with `palette` (a colour.js Palette); `onLoad(entry)` runs after each tile
   * arrives (and with null when a retry is due).
   */
  constructor(palette, onLoad) {
    this.palette = palette;
    this.onLoad = onLoad;
    this.reset(null);
  }

  /** Forget everything and serve tiles of job `jobId` (or nothing for null). */
  reset(jobId) {
    this.jobId = jobId;
    this.entries = new Map(); // key -> {frame, level, row, col, data, shape, canvas, style}
    this.bytes = 0;
    this.inflight = new Set();
    this.failed = new Map(); // key -> time of the last failure
    this.queue = [];
    this.requests = 0; // tile fetches issued (for tests and the status bar)
  }

  static key(frame, level, row, col) {
    return `${frame}/${level}/${row}/${col}`;
  }

  /** The loaded tile, or undefined. Marks it recently used. */
  get(frame, level, row, col) {
    const key = TileStore.key(frame, level, row, col);
    const entry = this.entries.get(key);
    if (entry) {
      this.entries.delete(key);
      this.entries.set(key, entry);
    }
    return entry;
  }

  /**
   * Replace the wish list: fetch these tiles ([frame, level, row, col], most wanted first)
   * unless loaded, in flight or recently failed. `urgent` ones go to the front.
   */
  want(list, urgent = []) {
    const now = performance.now();
    const queue = [];
    const seen = new Set();
    for (const [frame, level, row, col] of [...urgent, ...list]) {
      const key = TileStore.key(frame, level, row, col);
      if (seen.has(key) || this.entries.has(key) || this.inflight.has(key)) continue;
      const failedAt = this.failed.get(key);
      if (failedAt !== undefined && now - failedAt < RETRY_MS) continue;
      seen.add(key);
      queue.push({ key, frame, level, row, col });
    }
    this.queue = queue;
    this.pump();
  }

  pump() {
    while (this.inflight.size < CONCURRENCY && this.queue.length) {
      const item = this.queue.shift();
      this.fetch(item);
    }
  }

  async fetch({ key, frame, level, row, col }) {
    const jobId = this.jobId;
    this.inflight.add(key);
    this.requests += 1;
    const path =
      level === 0
        ? `/frames/${frame}/tiles/${row}/${col}?format=npy`
        : `/frames/${frame}/levels/${level}/tiles/${row}/${col}?format=npy`;
    try {
      const buffer = await api(jobPath(jobId, path), { as: "buffer" });
      if (jobId !== this.jobId) return;
      const { data, shape } = parseNpy(buffer);
      const entry = { frame, level, row, col, data, shape, canvas: null, style: null };
      this.entries.set(key, entry);
      this.bytes += data.byteLength;
      this.failed.delete(key);
      this.evict();
      this.onLoad(entry);
    } catch (err) {
      if (jobId !== this.jobId) return;
      this.failed.set(key, performance.now());
      if (err.status !== 404) console.warn(`tile ${key}: ${err.message}`);
      // Ask for a redraw once the retry delay is over, so the tile is wanted again.
      setTimeout(() => jobId === this.jobId && this.onLoad(null), RETRY_MS + 50);
    } finally {
      if (jobId === this.jobId) {
        this.inflight.delete(key);
        this.pump();
      }
    }
  }

  evict() {
    for (const [key, entry] of this.entries) {
      if (this.bytes <= MAX_BYTES) break;
      this.entries.delete(key);
      this.bytes -= entry.data.byteLength;
    }
  }

  /** The tile coloured with `style` ({vmin, vmax, scale, colormap}), as a canvas. */
  coloured(entry, style) {
    const tag = `${style.vmin}/${style.vmax}/${style.scale}/${style.colormap}`;
    if (entry.canvas && entry.style === tag) return entry.canvas;
    const [h, w] = entry.shape;
    if (!entry.canvas) {
      entry.canvas = document.createElement("canvas");
      entry.canvas.width = w;
      entry.canvas.height = h;
    }
    const ctx = entry.canvas.getContext("2d");
    const image = ctx.createImageData(w, h);
    this.palette.colourise(entry.data, image, style);
    ctx.putImageData(image, 0, 0);
    entry.style = tag;
    return entry.canvas;
  }

  /** Sampled values of the loaded tiles of `frame` at `level` (for percentile contrast). */
  sample(frame, level, limit = 200000) {
    const parts = [];
    let total = 0;
    for (const e of this.entries.values()) {
      if (e.frame === frame && e.level === level) {
        parts.push(e.data);
        total += e.data.length;
      }
    }
    const step = Math.max(1, Math.floor(total / limit));
    const out = [];
    for (const data of parts) for (let i = 0; i < data.length; i += step) out.push(data[i]);
    return out;
  }
}
