"""Input files travel with the job: workers need no shared filesystem for HKL, Fdump or mask
files.

On the client, :func:`pack_inputs` reads the files the experiment names (``crystal.hkl_file``,
``crystal.fdump_file``, ``sampling.mask_file``), names them by their file name in the job and
records each file's sha256 in ``JobSpec.inputs`` (so the job's fingerprint covers their
contents: a changed HKL file is another job). The bytes go into the store, as uint8 arrays in
its ``inputs`` group, written once with the store. On a worker, :func:`local_experiment`
copies them out of the store into a local cache folder (keyed by digest) and points the
experiment at those copies.
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

#: Experiment fields (section, field) naming input files, and the nanoBragg flag that sets each.
INPUT_FIELDS = {
    ("crystal", "hkl_file"): "-hkl",
    ("crystal", "fdump_file"): "-dump",
    ("sampling", "mask_file"): "-mask",
}
GROUP = "inputs"
CHUNK = 1 << 22  # bytes per chunk of an input file's array


def pack_inputs(job: JobSpec) -> tuple[JobSpec, dict[str, bytes]]:
    """``job`` with its input files named by file name and their digests in ``job.inputs``,
    and the files' bytes by name (only those read now: a packed job is returned as it is)."""
    digests, files, update = dict(job.inputs), {}, {}
    for (section, field), flag in INPUT_FIELDS.items():
        value = getattr(getattr(job.experiment, section), field)
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
        update[(section, field)] = name
    if not update:
        return job, {}
    experiment = _with_files(job.experiment, update)
    return job.model_copy(update={"experiment": experiment, "inputs": digests}), files


def _with_files(experiment: Experiment, update: dict[tuple[str, str], str]) -> Experiment:
    """``experiment`` with the (section, field) file names of ``update``."""
    sections: dict[str, dict[str, str]] = {}
    for (section, field), value in update.items():
        sections.setdefault(section, {})[field] = value
    return experiment.model_copy(
        update={
            section: getattr(experiment, section).model_copy(update=fields)
            for section, fields in sections.items()
        }
    )


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
    update = {}
    for section, field in INPUT_FIELDS:
        name = getattr(getattr(experiment, section), field)
        if name is not None and name in job.inputs:
            update[(section, field)] = str(_local_copy(group, name, job.inputs[name]))
    if not update:
        return experiment
    return _with_files(experiment, update)


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
