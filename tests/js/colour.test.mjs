// colour.js against the served colormaps document: table entries computed here from the
// document's own formulas, and (under pytest) the server's PNG pixels for the same values.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";

import { Palette } from "../../service/static/colour.js";
import { parseNpy } from "../../service/static/npy.js";
import { colormapsDocument, readBuffer, SERVED } from "./fixtures.mjs";

const doc = colormapsDocument();
const palette = new Palette(doc);

/** The document's definition, written out here: t, then the scale, then floor(255 s + 0.5). */
function expectedRgb(value, { vmin, vmax, scale, colormap }) {
  const t = Math.min(1, Math.max(0, (value - vmin) / (vmax - vmin)));
  const a = doc.scales.log.parameters.a;
  const s = { linear: t, sqrt: Math.sqrt(t), log: Math.log(1 + a * t) / Math.log(1 + a) }[scale];
  return doc.colormaps[colormap][Math.floor((doc.size - 1) * s + 0.5)];
}

function colourised(values, style) {
  const image = { data: new Uint8ClampedArray(values.length * 4) };
  palette.colourise(values, image, style);
  return image.data;
}

test("the document lists the colormaps and scales the viewer offers", () => {
  assert.deepEqual(palette.names, ["gray", "gray_r", "viridis", "inferno", "magma"]);
  assert.deepEqual(palette.scaleNames, ["linear", "sqrt", "log"]);
  for (const rows of Object.values(doc.colormaps)) assert.equal(rows.length, 256);
  assert.deepEqual(doc.colormaps.gray_r[0], [255, 255, 255]); // gray_r: white at vmin
});

test("every colormap and scale colours values as the document defines", () => {
  const values = Float64Array.from({ length: 500 }, (_, i) => -5 + (i * i) / 200);
  for (const colormap of palette.names) {
    for (const scale of palette.scaleNames) {
      const style = { vmin: 0.5, vmax: 900, scale, colormap };
      const rgba = colourised(values, style);
      values.forEach((v, i) => {
        const got = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2], rgba[4 * i + 3]];
        assert.deepEqual(got, [...expectedRgb(v, style), 255], `${colormap}/${scale} at ${v}`);
        assert.deepEqual(palette.rgb(v, style), expectedRgb(v, style));
      });
    }
  }
});

test("NaN stays transparent, the ends clip to the table's ends", () => {
  const style = { vmin: 0, vmax: 10, scale: "log", colormap: "viridis" };
  const rgba = colourised(new Float32Array([NaN, -1e30, 1e30, Infinity]), style);
  assert.deepEqual([...rgba.subarray(0, 4)], [0, 0, 0, 0]);
  assert.deepEqual([...rgba.subarray(4, 7)], doc.colormaps.viridis[0]);
  assert.deepEqual([...rgba.subarray(8, 11)], doc.colormaps.viridis[255]);
  assert.deepEqual([...rgba.subarray(12, 15)], doc.colormaps.viridis[255]);
});

test("the colour bar samples the table", () => {
  const css = palette.cssGradient("magma");
  const [r, g, b] = doc.colormaps.magma[255];
  assert.ok(css.startsWith("linear-gradient(to right, rgb(0,0,4) 0%"), css);
  assert.ok(css.endsWith(`rgb(${r},${g},${b}) 100%)`), css);
});

test("the viewer colours like the server's PNG, for every scale", { skip: !SERVED && "run by tests/test_js.py" }, () => {
  const cases = JSON.parse(readFileSync(join(SERVED, "png_cases.json"), "utf8"));
  assert.ok(cases.length >= 3);
  for (const { npy, rgb, style } of cases) {
    const { data } = parseNpy(readBuffer(join(SERVED, npy)));
    const server = new Uint8Array(readBuffer(join(SERVED, rgb)));
    const rgba = colourised(data, style);
    assert.equal(server.length, data.length * 3);
    for (let i = 0; i < data.length; i++) {
      const got = [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]];
      const want = [server[3 * i], server[3 * i + 1], server[3 * i + 2]];
      assert.deepEqual(got, want, `${style.colormap}/${style.scale}: pixel ${i} = ${data[i]}`);
    }
  }
});
