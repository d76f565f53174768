"""Access to the C nanoBragg reference images in ../shared/reference and parity metrics."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


def require_reference() -> Path:
    """The reference folder, or skip the test with the reason."""
    if not (REFERENCE / "manifest.json").is_file():
        pytest.skip(f"C nanoBragg reference images not found at {REFERENCE}")
    return REFERENCE


def need_file(path: Path) -> Path:
    """``path`` if that reference file exists, else skip the test with the reason."""
    if not path.exists():
        pytest.skip(f"C reference file {path} is absent (shared/reference not available)")
    return path


def case_args(name: str) -> list[str]:
    cases = json.loads((require_reference() / "cases.json").read_text())
    return shlex.split(cases[name])


def reference_image(name: str) -> np.ndarray:
    ref = require_reference()
    meta = json.loads((ref / "manifest.json").read_text())[name]
    data = np.fromfile(ref / "images" / f"{name}.bin", dtype="<f4")
    return data.reshape(meta["slow_pixels"], meta["fast_pixels"])


def reference_log(name: str) -> str:
    return (require_reference() / "logs" / f"{name}.log").read_text()


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
