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
