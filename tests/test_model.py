"""The experiment model and the render job: no sentinels, units in the schema, JSON round trip,
the old spelling still read, and no torch needed to use them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine.legacy import is_legacy, upgrade_experiment
from engine.model import Experiment
from engine.resolve import parse_nanobragg
from tiling.job import JobSpec

ROOT = Path(__file__).resolve().parents[1]
ARGS = (
    "-cell 70 80 90 85 95 105 -default_F 100 -lambda 1.5 -xtal_size 0.002 -distance 120 "
    "-detpixels 64 -phi 3 -osc 0.5 -dispersion 0.2 -divergence 0.3 -spindle_axis 0 1 0 "
    "-detector_thick 100"
)


def experiment() -> Experiment:
    return parse_nanobragg(ARGS.split()).experiment


def walk(node, path=()):
    if isinstance(node, dict):
        for key, value in node.items():
            yield path + (key,), value
            yield from walk(value, path + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, path + (i,))


def test_job_schema_has_no_minus_one_sentinels():
    schema = JobSpec.model_json_schema()
    defaults = [(p, v) for p, v in walk(schema) if p[-1] == "default"]
    assert len(defaults) > 40  # the walk does reach the nested models' fields
    sentinels = [p for p, v in defaults if v == -1 or (isinstance(v, list) and -1 in v)]
    assert sentinels == []
    assert all(
        v is None or not isinstance(v, int | float) or v >= 0 or "phi" in str(p)
        for p, v in defaults
    )


def test_every_field_of_the_schema_is_described():
    schema = JobSpec.model_json_schema()
    missing = []
    for name, model in {"JobSpec": schema, **schema["$defs"]}.items():
        if name in ("Convention", "Pivot", "CrystalShape"):
            continue
        for field, spec in model.get("properties", {}).items():
            if not spec.get("description"):
                missing.append(f"{name}.{field}")
    assert missing == []
    beam = schema["$defs"]["Beam"]["properties"]
    assert "Angstrom" in beam["wavelength_A"]["description"]
    assert "mrad" in beam["hdivrange_mrad"]["description"]
    assert "pixels" in schema["properties"]["tile"]["description"]


def test_not_given_is_none():
    exp = parse_nanobragg("-cell 100 100 100 90 90 90 -default_F 1".split()).experiment
    assert exp.beam.dispersion is None and exp.beam.hdivsteps is None
    assert exp.scan.osc_deg is None and exp.scan.phisteps is None
    assert exp.crystal.mosaic_domains is None and exp.detector.thicksteps is None
    assert exp.goniometer.spindle_axis is None


def test_job_json_round_trip():
    job = JobSpec(experiment(), frames=3, tile=32, dtype="float64", pyramid_min=8)
    text = job.model_dump_json()
    again = JobSpec.model_validate_json(text)
    assert again == job
    assert job.frames == job.experiment.scan.frames == 3 and json.loads(text)["frames"] == 3
    assert again.fingerprint == job.fingerprint
    assert JobSpec.from_dict(json.loads(text)) == job
    assert JobSpec(job.experiment, frames=4, tile=32, dtype="float64").fingerprint != (
        job.fingerprint
    )


def test_job_rejects_bad_options():
    with pytest.raises(ValueError, match="frames"):
        JobSpec(experiment(), frames=0)
    with pytest.raises(ValueError, match="dtype"):
        JobSpec(experiment(), dtype="float16")


def old_spelling(exp: Experiment) -> dict:
    """``exp`` as the pre-0.2 model wrote it: -1 sentinels, goniometer = phi, size in um."""
    data = exp.model_dump(mode="json")
    scan = data.pop("scan")
    scan.pop("frames")  # the old model had no frame count in the experiment
    data["goniometer"] = {k: (-1 if v is None else v) for k, v in scan.items()}
    axis = data["goniometer"].pop("spindle_axis", None)
    data["detector"]["spindle_axis"] = exp.goniometer.spindle_axis and list(
        exp.goniometer.spindle_axis
    )
    assert axis is None
    size = data["crystal"].pop("size_mm")
    data["crystal"]["size_um"] = None if size is None else [x * 1000.0 for x in size]
    for part, keys in (
        ("beam", ("dispstep", "dispsteps", "hdivstep_mrad", "hdivsteps", "vdivsteps")),
        ("detector", ("thicksteps",)),
        ("crystal", ("mosaic_spread_deg", "mosaic_domains")),
    ):
        for key in keys:
            if data[part][key] is None:
                data[part][key] = -1
    return data


def test_old_spelling_is_read():
    exp = experiment()
    old = old_spelling(exp)
    assert is_legacy(old) and not is_legacy(exp.model_dump(mode="json"))
    upgraded = Experiment.model_validate(old)
    assert upgraded.scan.frames == 1
    assert upgraded.goniometer == exp.goniometer and upgraded.scan == exp.scan
    assert upgraded.beam == exp.beam and upgraded.detector == exp.detector
    assert upgraded.crystal.size_mm == pytest.approx(exp.crystal.size_mm, rel=1e-15)
    assert upgrade_experiment(exp.model_dump(mode="json")) == exp.model_dump(mode="json")
    job = JobSpec.model_validate(
        {"experiment": old, "frames": 2, "tile": 16, "dtype": "float32", "pyramid_min": 8}
    )
    assert job.frames == job.experiment.scan.frames == 2
    assert job.experiment.scan.model_copy(update={"frames": 1}) == exp.scan


def test_spec_file_in_the_old_spelling_renders_the_same_job(tmp_path):
    from tiling.cli import load_spec

    exp = experiment()
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                "experiment": old_spelling(exp),
                "frames": 2,
                "tile": 16,
                "dtype": "float64",
                "pyramid_min": 8,
            }
        )
    )
    job = load_spec(str(path))
    assert job.frames == 2 and job.experiment.scan.phi0_deg == exp.scan.phi0_deg
    bare = tmp_path / "bare.json"
    bare.write_text(exp.model_dump_json())
    assert load_spec(str(bare)).experiment == exp


def test_model_and_job_schema_do_not_import_torch():
    code = (
        "import sys, json; from tiling.job import JobSpec; from engine.model import Experiment; "
        "json.dumps(JobSpec.model_json_schema()); "
        "print(sorted(m for m in ('torch', 'zarr', 'dask', 'distributed') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"


def test_store_written_in_the_old_spelling_resumes(tmp_path):
    """A store whose attributes use the old model spelling still opens for the same job."""
    from tiling.store import ATTRS_KEY, StoreMismatchError, TileStore

    job = JobSpec(
        parse_nanobragg(ARGS.replace("-xtal_size 0.002", "-N 3").split()).experiment, tile=32
    )
    path = str(tmp_path / "old.zarr")
    store, resumed = TileStore.open_or_create(path, job)
    assert not resumed
    attrs = dict(store.group.attrs[ATTRS_KEY])
    attrs.update(experiment=old_spelling(job.experiment), fingerprint="0" * 64)
    store.group.update_attributes({ATTRS_KEY: attrs})
    store, resumed = TileStore.open_or_create(path, job)
    assert resumed
    assert store.group.attrs[ATTRS_KEY]["fingerprint"] == job.fingerprint
    other = JobSpec(job.experiment, tile=16)
    with pytest.raises(StoreMismatchError):
        TileStore.open_or_create(path, other)
