// Reader for NumPy .npy files (format versions 1-3): header dict, then the raw array.

const TYPES = {
  "<f4": Float32Array,
  "<f8": Float64Array,
  "<i4": Int32Array,
  "<u4": Uint32Array,
  "<i2": Int16Array,
  "<u2": Uint16Array,
  "|u1": Uint8Array,
  "|i1": Int8Array,
};

/**
 * Parse a little-endian 2-D .npy buffer (leading length-1 axes are dropped).
 * Returns {data: TypedArray in C order, shape: [rows, cols], dtype: "<f4"|...}.
 */
export function parseNpy(buffer) {
  const bytes = new Uint8Array(buffer);
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error("not a .npy file");
  const view = new DataView(buffer);
  const major = bytes[6];
  const start = major === 1 ? 10 : 12;
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLength));

  const descr = /'descr'\s*:\s*'([^']+)'/.exec(header);
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
  if (!descr || !shapeText) throw new Error("malformed .npy header");
  const Type = TYPES[descr[1]];
  if (!Type) throw new Error(`unsupported .npy dtype ${descr[1]}`);
  let shape = shapeText[1]
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  while (shape.length > 2 && shape[0] === 1) shape = shape.slice(1);
  if (shape.length === 1) shape = [1, shape[0]];
  if (shape.length !== 2) throw new Error(`expected a 2-D array, got shape (${shape})`);

  const count = shape[0] * shape[1];
  const offset = start + headerLength;
  const size = Type.BYTES_PER_ELEMENT;
  let data =
    offset % size === 0
      ? new Type(buffer, offset, count)
      : new Type(buffer.slice(offset, offset + count * size));
  if (/'fortran_order'\s*:\s*True/.test(header)) data = transpose(data, shape);
  return { data, shape, dtype: descr[1] };
}

function transpose(data, [rows, cols]) {
  const out = new data.constructor(data.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[r * cols + c] = data[c * rows + r];
  return out;
}
