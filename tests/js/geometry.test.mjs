// geometry.js on a flat detector 100 mm from the sample, beam through its centre: every
// expected value is worked out here from the right-angled triangle (distance, radius).

import assert from "node:assert/strict";
import { test } from "node:test";

import { beamCentre, resolutionAt, ring, ringResolutions } from "../../service/static/geometry.js";

const DISTANCE = 100; // mm
const PIXEL = 0.1; // mm
const CENTRE = 49.5; // pixel-centre coordinate of the beam on a 100 x 100 detector
const geometry = {
  wavelength_A: 1.0,
  pixel_size_mm: PIXEL,
  distance_mm: DISTANCE,
  // pix0 + (f + 0.5) pixel fdet + (s + 0.5) pixel sdet = [100, 0, 0] at f = s = 49.5
  pix0_mm: [DISTANCE, 5, -5],
  fdet: [0, 0, 1],
  sdet: [0, -1, 0],
  beam: [1, 0, 0],
};
const near = (a, b, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${a} != ${b}`);
const dOfRadius = (r) => geometry.wavelength_A / (2 * Math.sin(Math.atan(r / DISTANCE) / 2));

test("resolution and 2theta of a pixel", () => {
  const onBeam = resolutionAt(geometry, CENTRE, CENTRE);
  assert.equal(onBeam.d, Infinity);
  near(onBeam.twoTheta, 0);
  const along = resolutionAt(geometry, CENTRE + 30, CENTRE); // 3 mm off the beam
  near(along.twoTheta, (Math.atan(3 / DISTANCE) * 180) / Math.PI);
  near(along.d, dOfRadius(3));
  const corner = resolutionAt(geometry, 0, 0); // 4.95 mm off along both axes
  near(corner.d, dOfRadius(Math.hypot(4.95, 4.95)));
});

test("the direct beam lands on the detector centre; a beam away from it misses", () => {
  const [f, s] = beamCentre(geometry);
  near(f, CENTRE);
  near(s, CENTRE);
  assert.equal(beamCentre({ ...geometry, beam: [-1, 0, 0] }), null);
  assert.equal(beamCentre({ ...geometry, beam: [0, 1, 0] }), null);
});

test("a ring's points lie at the radius of its resolution", () => {
  const d = dOfRadius(4);
  const points = ring(geometry, d, 36);
  assert.equal(points.length, 37);
  for (const [f, s] of points) near(Math.hypot(f - CENTRE, s - CENTRE) * PIXEL, 4, 1e-9);
  assert.deepEqual(ring(geometry, 0.4), []); // d < wavelength / 2: no such ring
});

test("ring resolutions are round, distinct, coarsest first and on the detector", () => {
  const ds = ringResolutions(geometry, [100, 100]);
  assert.ok(ds.length >= 3, String(ds));
  const finest = dOfRadius(Math.hypot(4.95, 4.95));
  for (let i = 0; i < ds.length; i++) {
    assert.equal(Number(ds[i].toPrecision(2)), ds[i]);
    assert.ok(ds[i] > finest * 0.99, `${ds[i]} beyond the corner's ${finest}`);
    if (i) assert.ok(ds[i] < ds[i - 1]);
  }
});
