// Shared inputs of the JS unit tests: the service's colormaps document and, when the pytest
// wrapper (tests/test_js.py) provides them, PNG pixels rendered by the server.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
/** Folder of server-rendered fixtures written by tests/test_js.py (unset: run standalone). */
export const SERVED = process.env.BRAGGTILE_JS_FIXTURES || null;

/** The JSON that GET /v1/colormaps serves (from the fixtures, or from service.colormaps). */
export function colormapsDocument() {
  if (SERVED) return JSON.parse(readFileSync(join(SERVED, "colormaps.json"), "utf8"));
  const python = process.env.PYTHON || "python3";
  const code = "import json; from service.colormaps import document; print(json.dumps(document()))";
  const run = spawnSync(python, ["-c", code], { cwd: ROOT, encoding: "utf8", env: { ...process.env, PYTHONPATH: ROOT } });
  if (run.status !== 0) throw new Error(`${python} could not print the colormaps: ${run.stderr}`);
  return JSON.parse(run.stdout);
}

/** An ArrayBuffer holding exactly the bytes of file `path`. */
export function readBuffer(path) {
  const bytes = readFileSync(path);
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
}
