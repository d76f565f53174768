"""``-hkl`` writes Fdump.bin as C does; a later run without ``-hkl`` reads it back."""

from __future__ import annotations

import numpy as np

from engine.cli import main

ARGS = ["-cell", "60", "70", "80", "90", "90", "90", "-misset", "5", "10", "15", "-lambda", "1"]
ARGS += ["-N", "10", "-distance", "150", "-detpixels", "96", "-pixel", "0.5", "-nonoise", "-nopgm"]
ARGS += ["-noprogress"]


def test_fdump_written_then_read(in_inputs, capsys):
    assert main(ARGS + ["-hkl", "ortho.hkl", "-floatfile", "with_hkl.bin"]) == 0
    dump = in_inputs / "Fdump.bin"
    assert dump.is_file() and dump.stat().st_size > 0
    assert main(ARGS + ["-floatfile", "from_dump.bin"]) == 0
    assert "reading" not in capsys.readouterr().err
    a = np.fromfile(in_inputs / "with_hkl.bin", dtype="<f4")
    b = np.fromfile(in_inputs / "from_dump.bin", dtype="<f4")
    assert a.max() > 0 and np.array_equal(a, b)


def test_no_structure_factors_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(ARGS) == 2
    assert "-hkl" in capsys.readouterr().err
