// Client-side colouring: value -> t in [0, 1] by vmin/vmax, a scale (linear, sqrt, log), then
// an entry of a colormap's table. Tables and scales come from the service (GET /v1/colormaps,
// service/colormaps.py), so the viewer and the server's PNGs give the same colours. Colouring
// happens here, so contrast changes repaint without refetching pixels.

/** The scale functions of t in [0, 1], from a scale definition {formula, parameters}. */
function scaleFunction(name, definition) {
  if (name === "linear") return (t) => t;
  if (name === "sqrt") return Math.sqrt;
  if (name === "log") {
    const a = definition.parameters.a;
    const norm = Math.log1p(a);
    return (t) => Math.log1p(a * t) / norm;
  }
  throw new Error(`unknown scale ${name} (${definition.formula})`);
}

/** Colormaps and scales of the service's colormaps document. */
export class Palette {
  constructor(doc) {
    this.size = doc.size;
    this.names = Object.keys(doc.colormaps);
    this.scaleNames = Object.keys(doc.scales);
    this.tables = new Map();
    for (const [name, rows] of Object.entries(doc.colormaps)) {
      if (rows.length !== doc.size) throw new Error(`colormap ${name}: ${rows.length} entries`);
      // packed RGBA, little-endian Uint32 (ImageData's byte order), opaque
      this.tables.set(name, Uint32Array.from(rows, ([r, g, b]) => ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0));
    }
    this.scales = new Map(Object.entries(doc.scales).map(([name, d]) => [name, scaleFunction(name, d)]));
    this.rows = doc.colormaps;
  }

  /** Table entry of `value` for {vmin, vmax, scale}: floor((size-1) scale(t) + 0.5). */
  indexer({ vmin, vmax, scale }) {
    const stretch = this.scales.get(scale);
    if (!stretch) throw new Error(`unknown scale ${scale}`);
    const span = vmax > vmin ? vmax - vmin : 1;
    const top = this.size - 1;
    return (value) => {
      const t = (value - vmin) / span;
      return Math.floor(stretch(t <= 0 ? 0 : t >= 1 ? 1 : t) * top + 0.5);
    };
  }

  /** [r, g, b] (0-255) of `value` with {vmin, vmax, scale, colormap}. */
  rgb(value, style) {
    return this.rows[style.colormap][this.indexer(style)(value)];
  }

  /**
   * Colour `data` (row-major values) into `image` (an ImageData of the same size) with
   * {vmin, vmax, scale, colormap}. NaN pixels stay transparent.
   */
  colourise(data, image, style) {
    const table = this.tables.get(style.colormap);
    if (!table) throw new Error(`unknown colormap ${style.colormap}`);
    const index = this.indexer(style);
    const out = new Uint32Array(image.data.buffer, image.data.byteOffset, data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      out[i] = v !== v ? 0 : table[index(v)];
    }
  }

  /** CSS gradient of a colormap, for the colour bar. */
  cssGradient(colormap) {
    const rows = this.rows[colormap];
    const stops = [];
    for (let i = 0; i <= 16; i++) {
      const [r, g, b] = rows[Math.round((i / 16) * (rows.length - 1))];
      stops.push(`rgb(${r},${g},${b}) ${(i / 16) * 100}%`);
    }
    return `linear-gradient(to right, ${stops.join(", ")})`;
  }
}
