"""Read a job file (``--spec job.json``): a render job, or a bare experiment, as JSON.

A job holds ``experiment`` and its options (``frames``, ``tile``, ``dtype``, ``pyramid_min``;
see :class:`tiling.job.JobSpec`); the old spelling of the experiment is read too
(:mod:`engine.legacy`). Errors name ``--spec``, the file and the bad field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from engine.errors import InputError
from engine.model import Experiment

JOB_OPTIONS = ("frames", "tile", "dtype", "pyramid_min")


def read_job_file(path: str) -> dict[str, Any]:
    """The file's JSON as a job dict: ``{"experiment": {...}, <options given>}``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise InputError("--spec", f"cannot read {path!r}: {err}") from None
    except json.JSONDecodeError as err:
        raise InputError("--spec", f"{path} is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise InputError("--spec", f"{path} holds no JSON object")
    if "experiment" not in data:
        data = {"experiment": data}
    return data


def spec_error(err: ValidationError, path: str) -> InputError:
    """A validation error of a job file as one line naming the file and the field."""
    first = err.errors()[0]
    loc = ".".join(str(x) for x in first["loc"])
    return InputError("--spec", f"{path}: {loc}: {first['msg']}")


def read_experiment(path: str) -> tuple[Experiment, dict[str, Any]]:
    """The experiment of a job file and the job options it gives."""
    data = read_job_file(path)
    try:
        experiment = Experiment.model_validate(data["experiment"])
    except ValidationError as err:
        raise spec_error(err, path) from None
    return experiment, {k: data[k] for k in JOB_OPTIONS if k in data}
