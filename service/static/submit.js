// The new-job form: presets, nanoBragg arguments, frames/tile/dtype, input files; shows the
// API's 4xx answer (detail, field, limit) against the field it names.

import { api, ApiError } from "./api.js";
import { $, el } from "./dom.js";

let presets = [];

/** Fill the preset picker from GET /v1/presets. */
async function loadPresets() {
  try {
    presets = await api("/v1/presets");
  } catch {
    presets = [];
  }
  const select = $("preset");
  for (const p of presets) select.append(el("option", { value: p.name }, p.name));
}

function choosePreset() {
  const p = presets.find((x) => x.name === $("preset").value);
  $("preset-description").textContent = p ? p.description : "";
  if (p) $("nanobragg").value = p.nanobragg;
}

const FIELD_INPUTS = { frames: "frames", tile: "tile", dtype: "dtype", inputs: "inputs" };

function clearSubmitError() {
  $("submit-error").hidden = true;
  $("submit-error").textContent = "";
  for (const node of document.querySelectorAll("#submit-form .invalid")) node.classList.remove("invalid");
}

function showSubmitError(err) {
  const box = $("submit-error");
  box.replaceChildren();
  if (err instanceof ApiError) {
    box.append(el("b", {}, `${err.status} `), err.detail || "rejected");
    const facts = [];
    if (err.field) facts.push(el("span", {}, "field ", el("code", {}, err.field)));
    if (err.limit !== null) facts.push(el("span", {}, "limit ", el("code", {}, String(err.limit))));
    if (facts.length) box.append(el("div", { class: "facts" }, ...facts));
    const field = err.field || "";
    const key = Object.keys(FIELD_INPUTS).find((k) => field === k || field.startsWith(`${k}.`));
    $(key ? FIELD_INPUTS[key] : "nanobragg").classList.toggle("invalid", !!field);
  } else {
    box.append(`Cannot reach the server: ${err.message}`);
  }
  box.hidden = false;
}

async function submit(event, onCreated) {
  event.preventDefault();
  clearSubmitError();
  const args = $("nanobragg").value.trim();
  if (!args) {
    showSubmitError(new ApiError(422, { detail: "enter nanoBragg arguments or pick a preset", field: "nanobragg" }));
    return;
  }
  const body = { nanobragg: args };
  for (const name of ["frames", "tile"]) {
    const text = $(name).value.trim();
    if (text !== "") body[name] = Number(text);
  }
  if ($("dtype").value) body.dtype = $("dtype").value;
  const files = $("inputs").files;
  if (files.length) {
    body.inputs = {};
    for (const file of files) body.inputs[file.name] = await file.text();
  }
  $("submit").disabled = true;
  try {
    onCreated(await api("/v1/jobs", { method: "POST", json: body }));
  } catch (err) {
    showSubmitError(err);
  } finally {
    $("submit").disabled = false;
  }
}

/** Wire the form; `onCreated(record)` gets each accepted job's record. */
export function setupSubmitForm(onCreated) {
  $("preset").addEventListener("change", choosePreset);
  $("submit-form").addEventListener("input", (event) => event.target.classList.remove("invalid"));
  $("submit-form").addEventListener("submit", (event) => submit(event, onCreated));
  loadPresets();
}
