"""Shared fixtures: a working folder holding the reference input files."""

from __future__ import annotations

import pytest

from reference import copy_inputs


@pytest.fixture
def in_inputs(tmp_path, monkeypatch):
    """Run the test inside a temporary folder holding the reference inputs (as C was run)."""
    copy_inputs(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path
