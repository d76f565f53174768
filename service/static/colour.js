// Client-side colouring: value -> [0, 1] by vmin/vmax, a stretch (linear, sqrt, log), then a
// colormap. Colouring happens here, so contrast changes repaint without refetching pixels.

// viridis, inferno and magma (matplotlib's CC0 colormaps) sampled at 33 points, hex RGB.
const ANCHORS = {
  viridis:
    "440154470d6048186a482374472d7b4537814240863e49893b528b375b8d33638d2f6b8e2c728e297a8e26828e" +
    "23898e21918c1f988b1fa08822a78528ae8032b67a3fbc734ec36b5ec96270cf5784d44b98d83eaddc30c2df23" +
    "d8e219ece51bfde725",
  inferno:
    "0000040403120b0724150b37210c4a2f0a5b3d09654a0c6b57106e64156e71196e7d1e6d8a226a972766a32c61" +
    "b0315bbc3754c73e4cd24644db503be45a31eb6628f1731df68013f98e09fb9d07fcac11fbbc21f9cb35f5db4c" +
    "f2ea69f3f68afcffa4",
  magma:
    "0000040303120a0822130d341d114729115a36106b440f7651127c5d177f6a1c81762181832681902a819c2e7f" +
    "aa337db73779c43c75d0416fdc4869e75263ef5d5ef56b5cf9795dfc8961fd9869fea772feb67cfec488fed395" +
    "fde2a3fcf0b2fcfdbf",
};

export const COLORMAPS = {
  gray: "gray",
  gray_r: "gray_r",
  viridis: "viridis",
  inferno: "inferno",
  magma: "magma",
};

export const SCALES = ["linear", "sqrt", "log"];

/** astropy's LogStretch: y = log(a x + 1) / log(a + 1), defined at x = 0. */
const LOG_A = 1000;
const BINS = 65536;

function stretch(scale, x) {
  if (scale === "sqrt") return Math.sqrt(x);
  if (scale === "log") return Math.log1p(LOG_A * x) / Math.log1p(LOG_A);
  return x;
}

function anchorColour(name, t) {
  if (name === "gray") return [t * 255, t * 255, t * 255];
  if (name === "gray_r") return [255 - t * 255, 255 - t * 255, 255 - t * 255];
  const hex = ANCHORS[name];
  const n = hex.length / 6 - 1;
  const i = Math.min(Math.floor(t * n), n - 1);
  const f = t * n - i;
  const rgb = (k, c) => parseInt(hex.substr(6 * k + 2 * c, 2), 16);
  return [0, 1, 2].map((c) => rgb(i, c) * (1 - f) + rgb(i + 1, c) * f);
}

const tables = new Map();

/** 65536 packed RGBA (little-endian Uint32) colours over the stretched range [0, 1]. */
function table(colormap, scale) {
  const key = `${colormap}/${scale}`;
  let lut = tables.get(key);
  if (lut) return lut;
  lut = new Uint32Array(BINS);
  for (let i = 0; i < BINS; i++) {
    const [r, g, b] = anchorColour(colormap, stretch(scale, i / (BINS - 1)));
    lut[i] = (255 << 24) | (Math.round(b) << 16) | (Math.round(g) << 8) | Math.round(r);
  }
  tables.set(key, lut);
  return lut;
}

/** CSS gradient of a colormap, for the colour bar. */
export function cssGradient(colormap) {
  const stops = [];
  for (let i = 0; i <= 16; i++) {
    const [r, g, b] = anchorColour(colormap, i / 16).map(Math.round);
    stops.push(`rgb(${r},${g},${b}) ${(i / 16) * 100}%`);
  }
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

/**
 * Colour `data` (row-major values) into `image` (an ImageData of the same size) with
 * {vmin, vmax, scale, colormap}. NaN pixels stay transparent.
 */
export function colourise(data, image, { vmin, vmax, scale, colormap }) {
  const lut = table(colormap, scale);
  const out = new Uint32Array(image.data.buffer);
  const span = vmax > vmin ? vmax - vmin : 1;
  const k = (BINS - 1) / span;
  const top = BINS - 1;
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    if (v !== v) {
      out[i] = 0;
      continue;
    }
    const x = (v - vmin) * k;
    out[i] = lut[x <= 0 ? 0 : x >= top ? top : (x + 0.5) | 0];
  }
}
