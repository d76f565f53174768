"""Access to the C nanoBragg reference images in ../shared/reference and parity metrics."""

from __future__ import annotations

import json
import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

#: ``<repo>/../shared/reference`` (or ``$BRAGGTILE_REFERENCE``, e.g. a copy taken to a GPU
#: machine): the one place the tests look for the C reference data.
REFERENCE = Path(
    os.environ.get("BRAGGTILE_REFERENCE")
    or Path(__file__).resolve().parents[1].parent / "shared" / "reference"
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def require_reference() -> Path:
    """The reference folder; if it is absent, skip the test (fail it when ``CI=true``).

    A CI run must not pass by skipping every parity test, so there a missing folder is an error.
    """
    if not (REFERENCE / "manifest.json").is_file():
        message = f"C nanoBragg reference data not found at {REFERENCE}"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    return REFERENCE


def need_file(relative: str) -> Path:
    """``REFERENCE / relative``; a file missing from a present reference folder fails the test."""
    path = require_reference() / relative
    if not path.exists():
        pytest.fail(f"reference data at {REFERENCE} is incomplete: {relative} is missing")
    return path


def copy_inputs(folder: Path) -> Path:
    """Copy the reference input files (HKL, matrix, source files) into ``folder``."""
    for f in (require_reference() / "inputs").iterdir():
        shutil.copy(f, folder / f.name)
    return folder


def reference_cases() -> list[str]:
    """Every case of ``cases.json`` in its order; none when the reference folder is absent."""
    if not (REFERENCE / "cases.json").is_file():
        return []
    return list(json.loads((REFERENCE / "cases.json").read_text()))


def case_args(name: str) -> list[str]:
    cases = json.loads((require_reference() / "cases.json").read_text())
    return shlex.split(cases[name])


def reference_image(name: str) -> np.ndarray:
    meta = json.loads((require_reference() / "manifest.json").read_text())[name]
    data = np.fromfile(need_file(f"images/{name}.bin"), dtype="<f4")
    return data.reshape(meta["slow_pixels"], meta["fast_pixels"])


def reference_log(name: str) -> str:
    return need_file(f"logs/{name}.log").read_text()


@dataclass(frozen=True)
class Parity:
    correlation: float
    sum_ratio: float
    max_abs_diff_rel: float  # max |ours - C| / max(C)

    def meets(self, corr: float, sum_tol: float, diff_tol: float) -> bool:
        return (
            self.correlation >= corr
            and abs(self.sum_ratio - 1.0) <= sum_tol
            and self.max_abs_diff_rel <= diff_tol
        )


FLOORS = {"float64": (0.999999, 1e-5, 1e-4), "float32": (0.99999, 1e-3, 5e-3)}


def parity(ours: np.ndarray, ref: np.ndarray) -> Parity:
    a = np.asarray(ours, dtype=np.float64).ravel()
    b = np.asarray(ref, dtype=np.float64).ravel()
    corr = (
        float(np.corrcoef(a, b)[0, 1])
        if a.std() > 0 and b.std() > 0
        else float(np.array_equal(a, b))
    )
    return Parity(corr, float(a.sum() / b.sum()), float(np.abs(a - b).max() / np.abs(b).max()))
