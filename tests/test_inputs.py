"""A job's fingerprint covers its input files' contents: a changed HKL file is another job."""

from __future__ import annotations

import shlex
from pathlib import Path

import numpy as np
import pytest

from engine.errors import UserInputError
from engine.resolve import parse_nanobragg
from tiling.inputs import pack_inputs
from tiling.job import JobSpec
from tiling.store import StoreMismatchError, TileStore

ARGS = "-hkl P1.hkl -cell 40 40 40 90 90 90 -lambda 1 -N 3 -distance 80 -detpixels 32"


def write_hkl(path: Path, scale: float) -> None:
    rows = [f"{h} {k} {m} {scale * (1 + h + k + m):.3f}" for h, k, m in np.ndindex(4, 4, 4)]
    path.write_text("\n".join(rows) + "\n")


def job_in(folder: Path, monkeypatch) -> JobSpec:
    monkeypatch.chdir(folder)
    return JobSpec(parse_nanobragg(shlex.split(ARGS)).experiment, tile=16)


def test_packing_names_files_by_name_and_digest(tmp_path: Path, monkeypatch) -> None:
    write_hkl(tmp_path / "P1.hkl", 1.0)
    packed, files = pack_inputs(job_in(tmp_path, monkeypatch))
    assert packed.experiment.crystal.hkl_file == "P1.hkl"
    assert files == {"P1.hkl": (tmp_path / "P1.hkl").read_bytes()}
    assert pack_inputs(packed) == (packed, {})  # a packed job reads nothing


def test_a_changed_hkl_file_is_another_job(tmp_path: Path, monkeypatch) -> None:
    write_hkl(tmp_path / "P1.hkl", 1.0)
    job = job_in(tmp_path, monkeypatch)
    store, resumed = TileStore.open_or_create(str(tmp_path / "s.zarr"), job)
    assert not resumed and store.job.inputs["P1.hkl"]
    assert TileStore.open_or_create(str(tmp_path / "s.zarr"), job)[1]  # same contents: resume
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "P1.hkl").rename(tmp_path / "elsewhere" / "P1.hkl")  # moved, same contents
    moved = job_in(tmp_path / "elsewhere", monkeypatch)
    assert TileStore.open_or_create(str(tmp_path / "s.zarr"), moved)[1]
    write_hkl(tmp_path / "elsewhere" / "P1.hkl", 2.0)
    with pytest.raises(StoreMismatchError, match="holds another job"):
        TileStore.open_or_create(str(tmp_path / "s.zarr"), moved)


def test_a_missing_input_file_names_the_flag(tmp_path: Path, monkeypatch) -> None:
    write_hkl(tmp_path / "P1.hkl", 1.0)
    job = job_in(tmp_path, monkeypatch)
    (tmp_path / "P1.hkl").unlink()
    with pytest.raises(UserInputError, match="-hkl: cannot read P1.hkl"):
        TileStore.open_or_create(str(tmp_path / "m.zarr"), job)
