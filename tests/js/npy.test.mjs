// npy.js: .npy headers of versions 1 and 2, dtypes, Fortran order, unaligned data, bad input.

import assert from "node:assert/strict";
import { test } from "node:test";

import { parseNpy } from "../../service/static/npy.js";

/**
 * A .npy file of `values` (written with `Type`) under header dict text `dict`, version `major`;
 * `shift` more bytes of header padding move the data off its 64-byte boundary.
 */
function npyFile(dict, Type, values, major = 1, shift = 0) {
  const prefix = major === 1 ? 10 : 12;
  let header = dict;
  while ((prefix + header.length + 1) % 64 !== 0) header += " ";
  header += `${" ".repeat(shift)}\n`;
  const data = new Type(values);
  const out = new Uint8Array(prefix + header.length + data.byteLength);
  out.set([0x93, ..."NUMPY"].map((c) => (typeof c === "string" ? c.charCodeAt(0) : c)), 0);
  out.set([major, 0], 6);
  const view = new DataView(out.buffer);
  if (major === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set([...header].map((c) => c.charCodeAt(0)), prefix);
  out.set(new Uint8Array(data.buffer), prefix + header.length);
  return out.buffer;
}

test("a float32 2-D array in C order", () => {
  const buffer = npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", Float32Array, [1, 2, 3, 4, 5, 6.5]);
  const { data, shape, dtype } = parseNpy(buffer);
  assert.deepEqual(shape, [2, 3]);
  assert.equal(dtype, "<f4");
  assert.ok(data instanceof Float32Array);
  assert.deepEqual([...data], [1, 2, 3, 4, 5, 6.5]);
});

test("version 2 headers, float64, leading length-1 axes and 1-D arrays", () => {
  const v2 = npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 2, 2), }", Float64Array, [0.1, 0.2, 0.3, 0.4], 2);
  const { data, shape } = parseNpy(v2);
  assert.deepEqual(shape, [2, 2]);
  assert.deepEqual([...data], [0.1, 0.2, 0.3, 0.4]);
  const line = npyFile("{'descr': '<i4', 'fortran_order': False, 'shape': (3,), }", Int32Array, [7, -8, 9]);
  assert.deepEqual(parseNpy(line).shape, [1, 3]);
  assert.deepEqual([...parseNpy(line).data], [7, -8, 9]);
});

test("Fortran order is transposed into C order", () => {
  // the 2x3 array [[1, 2, 3], [4, 5, 6]] stored column by column
  const buffer = npyFile("{'descr': '<u2', 'fortran_order': True, 'shape': (2, 3), }", Uint16Array, [1, 4, 2, 5, 3, 6]);
  assert.deepEqual([...parseNpy(buffer).data], [1, 2, 3, 4, 5, 6]);
});

test("data at an offset that is not a multiple of the item size is copied, not misread", () => {
  const buffer = npyFile("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", Float64Array, [1.5, -2.5], 1, 4);
  assert.equal((buffer.byteLength - 16) % 8, 4);
  assert.deepEqual([...parseNpy(buffer).data], [1.5, -2.5]);
});

test("bad files are refused with a message", () => {
  assert.throws(() => parseNpy(new Uint8Array(16).buffer), /not a \.npy file/);
  const big = npyFile("{'descr': '>f4', 'fortran_order': False, 'shape': (1, 1), }", Float32Array, [1]);
  assert.throws(() => parseNpy(big), /unsupported \.npy dtype >f4/);
  const cube = npyFile("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 1), }", Float32Array, [1, 2]);
  assert.throws(() => parseNpy(cube), /expected a 2-D array/);
  const broken = npyFile("{'fortran_order': False}", Float32Array, []);
  assert.throws(() => parseNpy(broken), /malformed \.npy header/);
});
