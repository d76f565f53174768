"""Bad input to ``braggtile nanobragg``: a clear message naming the flag, exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.cli import main

BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "100", "-detpixels", "32"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        (BASE + ["-bogus"], "-bogus"),
        (BASE + ["-distance", "abc"], "-distance"),
        (BASE + ["-distance", "-5"], "-distance"),
        (BASE + ["-lambda", "0"], "-lambda"),
        (BASE + ["-N"], "-N"),
        (BASE + ["-N", "0"], "-N"),
        (BASE + ["-phisteps", "-2"], "-phisteps"),
        (BASE + ["-dispsteps", "-1"], "-dispsteps"),
        (BASE + ["-seed", "-3"], "-seed"),
        (BASE + ["-mosaic_seed", "x"], "-mosaic_seed"),
        (BASE + ["-roi", "10", "5", "0", "4"], "-roi"),
        (BASE + ["-hkl", "missing.hkl"], "-hkl"),
        (BASE + ["-mat", "missing.mat"], "-mat"),
        (BASE + ["-sourcefile", "missing.txt"], "-sourcefile"),
        (BASE + ["-polar", "3"], "-polar"),
        (BASE + ["-dtype", "float16"], "-dtype"),
        (BASE + ["-detpixels", "0"], "-detpixels"),
        (["-default_F", "100"], "-cell"),
        (["-cell", "100", "100", "100", "90", "90", "90"], "-hkl"),
        (BASE + ["-misset_seed"], "-misset_seed"),
    ],
)
def test_bad_flag_exits_2_naming_it(argv, flag, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert flag in err and "error" in err
    assert not list(tmp_path.iterdir()), "nothing is written on bad input"


def test_unreadable_hkl_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.hkl").write_text("1 2 3 4\nnot a line\n")
    assert main(BASE + ["-hkl", "bad.hkl", "-noprogress"]) == 2
    assert "bad.hkl" in capsys.readouterr().err


def test_console_script_exit_status(tmp_path):
    """The installed entry point: a real process, a message on stderr and status 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "nanobragg", *BASE, "-twotheta_axis"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "-twotheta_axis" in proc.stderr
    unknown = subprocess.run(
        [sys.executable, "-m", "service.cli", "frobnicate"], capture_output=True, text=True
    )
    assert unknown.returncode == 2 and "unknown subcommand" in unknown.stderr
