// Scattering geometry of a detector pixel from JobRecord.geometry (lab frame, mm, Angstrom).

const dot = (a, b) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2];

/**
 * Resolution at the centre of pixel (fast, slow): {d (Angstrom, Infinity on the beam),
 * twoTheta (degrees)}. Centre = pix0 + (f + 0.5) pixel fdet + (s + 0.5) pixel sdet.
 */
export function resolutionAt(geometry, fast, slow) {
  const { wavelength_A: wavelength, pixel_size_mm: pixel, pix0_mm: pix0, fdet, sdet, beam } = geometry;
  const p = [0, 1, 2].map((i) => pix0[i] + (fast + 0.5) * pixel * fdet[i] + (slow + 0.5) * pixel * sdet[i]);
  const cos2t = dot(p, beam) / Math.sqrt(dot(p, p) * dot(beam, beam));
  const twoTheta = Math.acos(Math.max(-1, Math.min(1, cos2t)));
  const sinTheta = Math.sin(twoTheta / 2);
  return {
    d: sinTheta > 0 ? wavelength / (2 * sinTheta) : Infinity,
    twoTheta: (twoTheta * 180) / Math.PI,
  };
}

const cross = (a, b) => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
const norm = (a) => Math.sqrt(dot(a, a));
const scale = (a, k) => a.map((x) => x * k);
const add = (...vs) => [0, 1, 2].map((i) => vs.reduce((sum, v) => sum + v[i], 0));

/** Where the ray along `direction` from the sample meets the detector: [fast, slow] pixels. */
function onDetector(geometry, direction) {
  const { pix0_mm: pix0, fdet, sdet, pixel_size_mm: pixel } = geometry;
  const normal = cross(fdet, sdet);
  const along = dot(direction, normal);
  if (Math.abs(along) < 1e-12) return null;
  const t = dot(pix0, normal) / along;
  if (t <= 0) return null;
  const offset = add(scale(direction, t), scale(pix0, -1));
  return [dot(offset, fdet) / pixel - 0.5, dot(offset, sdet) / pixel - 0.5];
}

/** The direct-beam position on the detector, [fast, slow] (pixel-centre coordinates), or null. */
export function beamCentre(geometry) {
  return onDetector(geometry, geometry.beam);
}

/**
 * The ring of resolution `d` Angstrom on the detector: a polyline of `steps` [fast, slow]
 * points (null where the cone misses the detector plane).
 */
export function ring(geometry, d, steps = 180) {
  const sinTheta = geometry.wavelength_A / (2 * d);
  if (!(sinTheta > 0 && sinTheta < 1)) return [];
  const twoTheta = 2 * Math.asin(sinTheta);
  const beam = scale(geometry.beam, 1 / norm(geometry.beam));
  // Two unit vectors perpendicular to the beam.
  const helper = Math.abs(beam[0]) < 0.9 ? [1, 0, 0] : [0, 1, 0];
  const e1 = scale(cross(beam, helper), 1 / norm(cross(beam, helper)));
  const e2 = cross(beam, e1);
  const points = [];
  for (let i = 0; i <= steps; i++) {
    const phi = (2 * Math.PI * i) / steps;
    const radial = add(scale(e1, Math.cos(phi)), scale(e2, Math.sin(phi)));
    points.push(onDetector(geometry, add(scale(beam, Math.cos(twoTheta)), scale(radial, Math.sin(twoTheta)))));
  }
  return points;
}

/** About `count` round resolutions (Angstrom) spread over the detector, coarsest first. */
export function ringResolutions(geometry, shape, count = 5) {
  const [h, w] = shape;
  let maxTwoTheta = 0;
  for (const [f, s] of [[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1], [w / 2, 0], [0, h / 2], [w - 1, h / 2], [w / 2, h - 1]]) {
    maxTwoTheta = Math.max(maxTwoTheta, resolutionAt(geometry, f, s).twoTheta);
  }
  const out = [];
  for (let k = 1; k <= count; k++) {
    const twoTheta = (((k / count) * maxTwoTheta) / 180) * Math.PI * 0.97;
    const d = geometry.wavelength_A / (2 * Math.sin(twoTheta / 2));
    const rounded = Number(d.toPrecision(2));
    if (Number.isFinite(rounded) && !out.includes(rounded)) out.push(rounded);
  }
  return out;
}
