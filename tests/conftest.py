"""Shared fixtures: a working folder holding the reference input files."""

from __future__ import annotations

import shutil

import pytest

from reference import require_reference


@pytest.fixture
def in_inputs(tmp_path, monkeypatch):
    """Run the test inside a temporary folder holding the reference inputs (as C was run)."""
    ref = require_reference()
    for f in (ref / "inputs").iterdir():
        shutil.copy(f, tmp_path / f.name)
    monkeypatch.chdir(tmp_path)
    return tmp_path
