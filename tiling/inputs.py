"""Input files travel with the job: workers need no shared filesystem for HKL or Fdump files.

On the client, :func:`pack_inputs` reads the files the experiment names (``crystal.hkl_file``,
``crystal.fdump_file``), names them by their file name in the job and records each file's
sha256 in ``JobSpec.inputs`` (so the job's fingerprint covers their contents: a changed HKL file
is another job). The bytes go into the store, as uint8 arrays in its ``inputs`` group, written
once with the store. On a worker, :func:`local_experiment` copies them out of the store into a
local cache folder (keyed by digest) and points the experiment at those copies.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.errors import InputError
from engine.model import Experiment

if TYPE_CHECKING:
    import zarr

    from tiling.job import JobSpec

#: Crystal fields naming input files, and the nanoBragg flag that sets each.
INPUT_FIELDS = {"hkl_file": "-hkl", "fdump_file": "-dump"}
GROUP = "inputs"
CHUNK = 1 << 22  # bytes per chunk of an input file's array


def pack_inputs(job: JobSpec) -> tuple[JobSpec, dict[str, bytes]]:
    """``job`` with its input files named by file name and their digests in ``job.inputs``,
    and the files' bytes by name (only those read now: a packed job is returned as it is)."""
    crystal, digests, files, update = job.experiment.crystal, dict(job.inputs), {}, {}
    for field, flag in INPUT_FIELDS.items():
        value = getattr(crystal, field)
        if value is None or value in digests:
            continue
        try:
            data = Path(value).read_bytes()
        except OSError as err:
            raise InputError(flag, f"cannot read {value}: {err.strerror or err}") from None
        name = os.path.basename(value)
        if name in files and files[name] != data:
            raise InputError(flag, f"two different input files are named {name}")
        files[name] = data
        digests[name] = hashlib.sha256(data).hexdigest()
        update[field] = name
    if not update:
        return job, {}
    experiment = job.experiment.model_copy(update={"crystal": crystal.model_copy(update=update)})
    return job.model_copy(update={"experiment": experiment, "inputs": digests}), files


def write_inputs(group: zarr.Group, job: JobSpec, files: dict[str, bytes]) -> None:
    """Store the job's input files in ``group``'s ``inputs`` group (every one must be given)."""
    if not job.inputs:
        return
    missing = sorted(set(job.inputs) - set(files))
    if missing:
        raise InputError("inputs", f"the contents of {', '.join(missing)} are not available")
    inputs = group.require_group(GROUP)
    for name, data in files.items():
        array = inputs.create_array(
            name, shape=(len(data),), chunks=(CHUNK,), dtype="uint8", fill_value=0,
            attributes={"sha256": job.inputs[name]},
        )  # fmt: skip
        array[...] = np.frombuffer(data, dtype=np.uint8)


def local_experiment(experiment: Experiment, job: JobSpec, group: zarr.Group) -> Experiment:
    """``experiment`` with its input files as local copies taken from the store (cached)."""
    crystal, update = experiment.crystal, {}
    for field in INPUT_FIELDS:
        name = getattr(crystal, field)
        if name is not None and name in job.inputs:
            update[field] = str(_local_copy(group, name, job.inputs[name]))
    if not update:
        return experiment
    return experiment.model_copy(update={"crystal": crystal.model_copy(update=update)})


def _local_copy(group: zarr.Group, name: str, digest: str) -> Path:
    folder = Path(tempfile.gettempdir()) / "braggtile-inputs" / digest
    path = folder / name
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    data = np.asarray(group[GROUP][name][...], dtype=np.uint8).tobytes()
    if hashlib.sha256(data).hexdigest() != digest:
        raise InputError("inputs", f"{name} in the store does not match the job's digest")
    fd, tmp = tempfile.mkstemp(dir=folder)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
    os.replace(tmp, path)  # atomic: a concurrent reader sees the whole file or none
    return path
