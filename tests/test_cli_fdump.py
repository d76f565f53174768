"""``-hkl`` writes Fdump.bin as C does; a later run without ``-hkl`` renders from that file.

C nanoBragg's Fdump.bin: the text "h_min h_max k_min k_max l_min l_max\\n\\f", then the
(h_range+1) x (k_range+1) x (l_range+1) table as native float64, l fastest (the +1: a zero
padding slot per axis).  The layout is read here with numpy, not with the code under test.
"""

from __future__ import annotations

import numpy as np

from engine.cli import main

ARGS = ["-cell", "60", "70", "80", "90", "90", "90", "-misset", "5", "10", "15", "-lambda", "1"]
ARGS += ["-N", "10", "-distance", "150", "-detpixels", "96", "-pixel", "0.5", "-nonoise", "-nopgm"]
ARGS += ["-noprogress"]
SEPARATOR = b"\n\f"


def read_dump(raw: bytes) -> tuple[list[int], np.ndarray, int]:
    """Bounds, table and the header's length of an Fdump.bin's bytes."""
    end = raw.index(SEPARATOR) + len(SEPARATOR)
    bounds = [int(x) for x in raw[:end].decode("ascii").split()]
    shape = tuple(hi - lo + 2 for lo, hi in zip(bounds[::2], bounds[1::2], strict=True))
    return bounds, np.frombuffer(raw[end:], dtype="<f8").reshape(shape), end


def test_fdump_holds_the_hkl_file(in_inputs, capsys):
    assert main(ARGS + ["-hkl", "ortho.hkl", "-floatfile", "with_hkl.bin"]) == 0
    assert "writing dump file for next time: Fdump.bin" in capsys.readouterr().out
    bounds, table, _ = read_dump((in_inputs / "Fdump.bin").read_bytes())
    hkl = np.loadtxt(in_inputs / "ortho.hkl")
    index = hkl[:, :3].astype(int)
    lo, hi = index.min(0), index.max(0)
    assert bounds == [lo[0], hi[0], lo[1], hi[1], lo[2], hi[2]]
    i, j, k = (index - lo).T
    np.testing.assert_array_equal(table[i, j, k], hkl[:, 3])
    assert np.count_nonzero(table) == np.count_nonzero(hkl[:, 3])  # the rest: default_F 0
    assert not table[-1].any() and not table[:, -1].any() and not table[:, :, -1].any()


def test_a_run_without_hkl_renders_from_the_fdump(in_inputs):
    assert main(ARGS + ["-hkl", "ortho.hkl", "-floatfile", "with_hkl.bin"]) == 0
    dump = in_inputs / "Fdump.bin"
    assert main(ARGS + ["-floatfile", "from_dump.bin"]) == 0
    with_hkl = np.fromfile(in_inputs / "with_hkl.bin", dtype="<f4")
    from_dump = np.fromfile(in_inputs / "from_dump.bin", dtype="<f4")
    assert with_hkl.max() > 0 and np.array_equal(with_hkl, from_dump)

    # the Fs come from that file: doubling every F in it gives 4x the photons
    raw = dump.read_bytes()
    _, table, end = read_dump(raw)
    dump.write_bytes(raw[:end] + (2.0 * table).astype("<f8").tobytes())
    assert main(ARGS + ["-floatfile", "doubled.bin"]) == 0
    doubled = np.fromfile(in_inputs / "doubled.bin", dtype="<f4")
    np.testing.assert_allclose(doubled, 4.0 * with_hkl, rtol=1e-6, atol=0)


def test_no_structure_factors_at_all(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(ARGS) == 2
    assert "-hkl" in capsys.readouterr().err


def test_the_fdump_is_read_even_with_default_f_as_c_does(in_inputs, capsys):
    """C reads Fdump.bin whenever no -hkl is given; -default_F then fills only reciprocal space
    outside the dump's index range (inside it, the dump's zeros stay zeros)."""
    assert main(ARGS + ["-hkl", "ortho.hkl", "-floatfile", "with_hkl.bin"]) == 0
    capsys.readouterr()
    assert main(ARGS + ["-default_F", "7", "-floatfile", "dump_and_f.bin"]) == 0
    assert "reading Fs from Fdump.bin" in capsys.readouterr().out
    # the same table as an HKL file listing every grid point, zeros included
    bounds, table, _ = read_dump((in_inputs / "Fdump.bin").read_bytes())
    lo = bounds[::2]
    grid = np.argwhere(np.ones(np.array(bounds[1::2]) - lo + 1))
    rows = [f"{h + lo[0]} {k + lo[1]} {m + lo[2]} {float(table[h, k, m])!r}" for h, k, m in grid]
    (in_inputs / "full.hkl").write_text("\n".join(rows) + "\n")
    assert main(ARGS + ["-hkl", "full.hkl", "-default_F", "7", "-floatfile", "full.bin"]) == 0
    (in_inputs / "Fdump.bin").unlink()
    assert main(ARGS + ["-default_F", "7", "-floatfile", "constant.bin"]) == 0
    names = ("dump_and_f.bin", "full.bin", "constant.bin")
    a, b, c = (np.fromfile(in_inputs / n, dtype="<f4") for n in names)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
