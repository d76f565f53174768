// The frame view: one canvas, a scale (screen px per detector pixel) and an offset, drawing
// the pyramid level that matches the zoom, with finer or coarser loaded tiles filling gaps.

const BACKGROUND = "#15171b";
const FRAME_FILL = "#22252b";
const GRID = "rgba(255, 255, 255, 0.07)";
const MAX_SCALE = 64;
const FIT_MARGIN = 8; // CSS px around a fitted frame
const VALUE_LABELS = 56; // device px per detector pixel from which values are written in

export class FrameView {
  /**
   * `store`: the TileStore; `availability`: {tile(frame, row, col), pyramid(frame)} says what
   * the server can give; `onDraw()` runs after every draw (status bar, painted counts).
   */
  constructor(canvas, store, availability, onDraw) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d");
    this.store = store;
    this.availability = availability;
    this.onDraw = onDraw;
    this.job = null;
    this.frame = 0;
    this.style = { vmin: 0, vmax: 1, scale: "log", colormap: "inferno" };
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.fitted = true;
    this.painted = new Set(); // level-0 tiles of this frame drawn with data: "row/col"
    this.urgent = []; // tiles to fetch first, [frame, level, row, col]
    this.hover = null; // {fast, slow} under the cursor
    this.rings = null; // {beam: [fast, slow] | null, rings: [{d, points}]} drawn over the frame
    this.drawn = { level: 0, missing: 0 }; // pyramid level drawn, its chunks not loaded
    this.pendingDraw = false;
    this.resize();
  }

  /** Show job {shape, levels, tile, grid} (or null), fitted to the canvas. */
  setJob(job) {
    this.job = job;
    this.frame = 0;
    this.painted = new Set();
    this.fit();
  }

  setFrame(frame) {
    if (frame === this.frame) return;
    this.frame = frame;
    this.painted = new Set();
    this.requestDraw();
  }

  setStyle(style) {
    this.style = style;
    this.requestDraw();
  }

  /** Match the canvas buffer to its CSS size; keeps a fitted view fitted. */
  resize() {
    const dpr = window.devicePixelRatio || 1;
    const rect = this.canvas.getBoundingClientRect();
    this.cssWidth = Math.max(1, rect.width);
    this.cssHeight = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.cssWidth * dpr);
    this.canvas.height = Math.round(this.cssHeight * dpr);
    if (this.fitted) this.fit();
    else this.requestDraw();
  }

  fitScale() {
    if (!this.job) return 1;
    const [h, w] = this.job.shape;
    const fit = Math.min((this.cssWidth - 2 * FIT_MARGIN) / w, (this.cssHeight - 2 * FIT_MARGIN) / h);
    return Math.max(1e-3, fit);
  }

  /** Whole frame in view, centred. */
  fit() {
    this.scale = this.fitScale();
    this.centreOn(this.job ? this.job.shape[1] / 2 : 0, this.job ? this.job.shape[0] / 2 : 0);
    this.fitted = true;
  }

  /** One detector pixel per screen (device) pixel, keeping the view centre. */
  actualSize() {
    const [cf, cs] = this.toPixel(this.cssWidth / 2, this.cssHeight / 2);
    this.scale = 1 / (window.devicePixelRatio || 1);
    this.centreOn(cf, cs);
    this.fitted = false;
  }

  centreOn(fast, slow) {
    this.tx = this.cssWidth / 2 - fast * this.scale;
    this.ty = this.cssHeight / 2 - slow * this.scale;
    this.requestDraw();
  }

  /** Zoom by `factor` keeping the detector point under CSS position (x, y) fixed. */
  zoomAt(factor, x, y) {
    const next = Math.min(MAX_SCALE, Math.max(this.fitScale() / 4, this.scale * factor));
    const k = next / this.scale;
    this.tx = x - (x - this.tx) * k;
    this.ty = y - (y - this.ty) * k;
    this.scale = next;
    this.fitted = false;
    this.requestDraw();
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.fitted = false;
    this.requestDraw();
  }

  /** Continuous detector coordinates (fast, slow) at CSS position (x, y). */
  toPixel(x, y) {
    return [(x - this.tx) / this.scale, (y - this.ty) / this.scale];
  }

  /** The pixel {fast, slow} under CSS position (x, y), or null outside the frame. */
  pixelAt(x, y) {
    if (!this.job) return null;
    const [f, s] = this.toPixel(x, y).map(Math.floor);
    const [h, w] = this.job.shape;
    return f >= 0 && s >= 0 && f < w && s < h ? { fast: f, slow: s } : null;
  }

  /** The pyramid level whose pixels best match the screen (finer, never coarser). */
  viewLevel() {
    if (!this.job) return 0;
    const dpr = window.devicePixelRatio || 1;
    const k = Math.floor(Math.log2(1 / (this.scale * dpr)) + 1e-9);
    return Math.max(0, Math.min(this.job.levels.length - 1, k));
  }

  /**
   * Value at pixel (fast, slow): {value, level} from the finest loaded tile, level 0 being
   * exact. Asks for the level-0 tile when it is not loaded. null when nothing is loaded.
   */
  valueAt(fast, slow) {
    const { tile, levels } = this.job;
    const row0 = Math.floor(slow / tile);
    const col0 = Math.floor(fast / tile);
    if (!this.store.get(this.frame, 0, row0, col0) && this.availability.tile(this.frame, row0, col0)) {
      this.urgent = [[this.frame, 0, row0, col0]];
      this.requestDraw();
    }
    for (let level = 0; level < levels.length; level++) {
      const m = 2 ** level;
      const ls = Math.floor(slow / m);
      const lf = Math.floor(fast / m);
      const row = Math.floor(ls / tile);
      const col = Math.floor(lf / tile);
      const entry = this.store.get(this.frame, level, row, col);
      if (entry) {
        const w = entry.shape[1];
        return { value: entry.data[(ls - row * tile) * w + (lf - col * tile)], level };
      }
    }
    return null;
  }

  requestDraw() {
    if (this.pendingDraw) return;
    this.pendingDraw = true;
    requestAnimationFrame(() => {
      this.pendingDraw = false;
      this.draw();
    });
  }

  draw() {
    const ctx = this.ctx;
    const dpr = window.devicePixelRatio || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, this.cssWidth, this.cssHeight);
    this.drawn = { level: 0, missing: 0 }; // pyramid level drawn, its chunks not loaded
    if (!this.job) return this.onDraw();

    const { shape, levels, tile } = this.job;
    const [h, w] = shape;
    const s = this.scale;
    const frameRect = this.screenRect(0, 0, w, h);
    ctx.fillStyle = FRAME_FILL;
    ctx.fillRect(...frameRect);
    ctx.save();
    ctx.beginPath();
    ctx.rect(...frameRect);
    ctx.clip();

    // The detector window in view, in level-0 pixels.
    const win = {
      f0: Math.max(0, Math.floor(-this.tx / s)),
      f1: Math.min(w, Math.ceil((this.cssWidth - this.tx) / s)),
      s0: Math.max(0, Math.floor(-this.ty / s)),
      s1: Math.min(h, Math.ceil((this.cssHeight - this.ty) / s)),
    };
    const wanted = [];
    if (win.f1 > win.f0 && win.s1 > win.s0) {
      this.drawGrid(win);
      const pyramid = this.availability.pyramid(this.frame);
      const level = pyramid ? this.viewLevel() : 0;
      this.drawn.level = level;
      for (let coarser = levels.length - 1; coarser > level; coarser--) this.drawLoaded(coarser, win);
      const missing = [];
      for (const [row, col] of this.chunksIn(level, win)) {
        const entry = this.store.get(this.frame, level, row, col);
        if (entry) {
          this.drawEntry(entry);
          continue;
        }
        missing.push([row, col]);
        const ok = level > 0 ? pyramid : this.availability.tile(this.frame, row, col);
        if (ok) wanted.push([this.frame, level, row, col]);
      }
      this.drawn.missing = missing.length;
      // Gaps at this level: show any finer tiles already loaded there.
      const m = 2 ** level;
      for (const [row, col] of missing) {
        const gap = {
          f0: Math.max(win.f0, col * tile * m),
          f1: Math.min(win.f1, (col + 1) * tile * m),
          s0: Math.max(win.s0, row * tile * m),
          s1: Math.min(win.s1, (row + 1) * tile * m),
        };
        for (let finer = level - 1; finer >= 0; finer--) this.drawLoaded(finer, gap);
      }
    }
    if (this.scale * (window.devicePixelRatio || 1) >= VALUE_LABELS) this.drawValues(win);
    this.drawRings();
    ctx.restore();
    this.drawHover();
    ctx.strokeStyle = "rgba(255, 255, 255, 0.25)";
    ctx.lineWidth = 1;
    ctx.strokeRect(frameRect[0] - 0.5, frameRect[1] - 0.5, frameRect[2] + 1, frameRect[3] + 1);
    this.store.want(wanted, this.urgent);
    this.urgent = [];
    this.onDraw();
  }

  /** Chunks (row, col) of `level` that meet window `win`, nearest the view centre first. */
  chunksIn(level, win) {
    const span = this.job.tile * 2 ** level;
    const [cf, cs] = this.toPixel(this.cssWidth / 2, this.cssHeight / 2);
    const out = [];
    for (let row = Math.floor(win.s0 / span); row * span < win.s1; row++) {
      for (let col = Math.floor(win.f0 / span); col * span < win.f1; col++) {
        const d = ((row + 0.5) * span - cs) ** 2 + ((col + 0.5) * span - cf) ** 2;
        out.push([row, col, d]);
      }
    }
    return out.sort((a, b) => a[2] - b[2]);
  }

  drawLoaded(level, win) {
    const span = this.job.tile * 2 ** level;
    for (let row = Math.floor(win.s0 / span); row * span < win.s1; row++) {
      for (let col = Math.floor(win.f0 / span); col * span < win.f1; col++) {
        const entry = this.store.get(this.frame, level, row, col);
        if (entry) this.drawEntry(entry);
      }
    }
  }

  drawEntry(entry) {
    const { tile, grid } = this.job;
    const m = 2 ** entry.level;
    const [eh, ew] = entry.shape;
    const f0 = entry.col * tile * m;
    const s0 = entry.row * tile * m;
    const rect = this.screenRect(f0, s0, f0 + ew * m, s0 + eh * m);
    this.ctx.imageSmoothingEnabled = this.scale * m * (window.devicePixelRatio || 1) < 1;
    this.ctx.imageSmoothingQuality = "high";
    this.ctx.drawImage(this.store.coloured(entry, this.style), ...rect);
    for (let r = entry.row * m; r < Math.min(grid[0], (entry.row + 1) * m); r++) {
      for (let c = entry.col * m; c < Math.min(grid[1], (entry.col + 1) * m); c++) {
        this.painted.add(`${r}/${c}`);
      }
    }
  }

  setRings(rings) {
    this.rings = rings;
    this.requestDraw();
  }

  /** Resolution rings with their labels, and the direct-beam position. */
  drawRings() {
    if (!this.rings || !this.job) return;
    const ctx = this.ctx;
    const [h, w] = this.job.shape;
    const at = ([f, s]) => [this.tx + (f + 0.5) * this.scale, this.ty + (s + 0.5) * this.scale];
    ctx.strokeStyle = "rgba(130, 200, 255, 0.8)";
    ctx.fillStyle = "rgba(130, 200, 255, 0.95)";
    ctx.lineWidth = 1;
    ctx.font = "11px system-ui, sans-serif";
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    for (const { d, points } of this.rings.rings) {
      ctx.beginPath();
      let open = false;
      let label = null;
      for (const p of points) {
        if (!p) {
          open = false;
          continue;
        }
        const [x, y] = at(p);
        if (open) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        open = true;
        // Room for the label (about 40 x 14 CSS px) right of and above the point.
        const room = [40 / this.scale, 14 / this.scale];
        const inside = p[0] >= 0 && p[1] >= room[1] && p[0] < w - room[0] && p[1] < h;
        if (inside && (!label || p[0] + p[1] > label[0] + label[1])) label = p;
      }
      ctx.stroke();
      if (label) ctx.fillText(`${d} Å`, ...at(label).map((v) => v + 3));
    }
    if (this.rings.beam) {
      const [x, y] = at(this.rings.beam);
      ctx.beginPath();
      ctx.moveTo(x - 6, y);
      ctx.lineTo(x + 6, y);
      ctx.moveTo(x, y - 6);
      ctx.lineTo(x, y + 6);
      ctx.stroke();
    }
  }

  /** Outline the pixel under the cursor (`this.hover`, {fast, slow} or null) when zoomed in. */
  drawHover() {
    if (!this.hover || this.scale < 4) return;
    const [x, y, w, h] = this.screenRect(this.hover.fast, this.hover.slow, this.hover.fast + 1, this.hover.slow + 1);
    this.ctx.strokeStyle = "#4f9dff";
    this.ctx.lineWidth = 2;
    this.ctx.strokeRect(x, y, w, h);
  }

  /** Each pixel's value written over it (level-0 data only), at high zoom. */
  drawValues(win) {
    const ctx = this.ctx;
    const s = this.scale;
    const { tile } = this.job;
    ctx.font = `${Math.min(14, Math.floor(s / 5))}px ui-monospace, Menlo, Consolas, monospace`;
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.lineWidth = 2.5;
    ctx.strokeStyle = "rgba(0, 0, 0, 0.6)";
    ctx.fillStyle = "#fff";
    for (let slow = win.s0; slow < win.s1; slow++) {
      for (let fast = win.f0; fast < win.f1; fast++) {
        const entry = this.store.entries.get(
          `${this.frame}/0/${Math.floor(slow / tile)}/${Math.floor(fast / tile)}`,
        );
        if (!entry) continue;
        const v = entry.data[(slow % tile) * entry.shape[1] + (fast % tile)];
        const text = Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-2) ? v.toExponential(1) : v.toPrecision(3);
        const x = this.tx + (fast + 0.5) * s;
        const y = this.ty + (slow + 0.5) * s;
        ctx.strokeText(text, x, y);
        ctx.fillText(text, x, y);
      }
    }
  }

  /** Level-0 tile outlines, so the grid shows while tiles are still to come. */
  drawGrid(win) {
    const { tile } = this.job;
    if (tile * this.scale < 12) return;
    const ctx = this.ctx;
    ctx.strokeStyle = GRID;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let f = Math.ceil(win.f0 / tile) * tile; f <= win.f1; f += tile) {
      const x = Math.round(this.tx + f * this.scale) + 0.5;
      ctx.moveTo(x, this.ty + win.s0 * this.scale);
      ctx.lineTo(x, this.ty + win.s1 * this.scale);
    }
    for (let s = Math.ceil(win.s0 / tile) * tile; s <= win.s1; s += tile) {
      const y = Math.round(this.ty + s * this.scale) + 0.5;
      ctx.moveTo(this.tx + win.f0 * this.scale, y);
      ctx.lineTo(this.tx + win.f1 * this.scale, y);
    }
    ctx.stroke();
  }

  /** [x, y, width, height] on screen of detector rectangle [f0, f1) x [s0, s1), snapped. */
  screenRect(f0, s0, f1, s1) {
    const dpr = window.devicePixelRatio || 1;
    const snap = (v) => Math.round(v * dpr) / dpr;
    const x0 = snap(this.tx + f0 * this.scale);
    const y0 = snap(this.ty + s0 * this.scale);
    return [x0, y0, snap(this.tx + f1 * this.scale) - x0, snap(this.ty + s1 * this.scale) - y0];
  }
}
