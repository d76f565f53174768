"""Any nanoBragg argument string reaches the nanoBragg parser, in every subcommand taking one:
``--nanobragg "ARGS"``, ``--nanobragg=ARGS`` and ``-- ARGS`` (issue 8, defect 2)."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import zarr
from distributed import LocalCluster

from engine.bench import main as bench_main
from engine.errors import InputError
from engine.passthrough import split_nanobragg
from tiling.cli import main as render_main

CELL = "-cell 100 100 100 90 90 90 -lambda 1 -N 3 -distance 100 -detpixels 24"
HKL = "-hkl P1.hkl " + CELL + " -default_F 10"
OVERSAMPLE = "-oversample 1 " + CELL + " -default_F 10"

# nanoBragg strings that start like an option of render or bench (-o, --t, -w, -d, -s, -r ...)
PREFIXED = [
    "-oversample 2 " + CELL + " -default_F 10",
    "-osc 0.1 " + CELL + " -default_F 10",
    "-water 0 " + CELL + " -default_F 10",
    "-dispersion 0 " + CELL + " -default_F 10",
    "-distance 90 " + CELL + " -default_F 10",
    "-scale 1 " + CELL + " -default_F 10",
    "-roi 0 3 0 3 " + CELL + " -default_F 10",
    "-pixel 0.1 " + CELL + " -default_F 10",
    "-fluence 1e24 " + CELL + " -default_F 10",
    "-hkl P1.hkl " + CELL,
    "-help",
]


@pytest.mark.parametrize("text", PREFIXED)
def test_split_takes_any_string_verbatim(text):
    tokens = shlex.split(text)
    for argv in (
        ["--nanobragg", text, "-o", "x.zarr", "--tile", "8"],
        ["-o", "x.zarr", f"--nanobragg={text}", "--tile", "8"],
        ["-o", "x.zarr", "--tile", "8", "--", *tokens],
    ):
        own, nanobragg = split_nanobragg(argv)
        assert own == ["-o", "x.zarr", "--tile", "8"]
        assert nanobragg == tokens


def test_split_errors_name_the_option():
    with pytest.raises(InputError, match="--nanobragg"):
        split_nanobragg(["-o", "x.zarr", "--nanobragg"])
    with pytest.raises(InputError, match="--nanobragg"):
        split_nanobragg(["--nanobragg", '-hkl "P1.hkl'])
    assert split_nanobragg(["--spec", "j.json"]) == (["--spec", "j.json"], None)


@pytest.fixture
def hkl_folder(tmp_path, monkeypatch):
    (tmp_path / "P1.hkl").write_text("0 0 0 10\n1 0 0 10\n0 1 0 10\n0 0 1 10\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def scheduler():
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        yield cluster.scheduler_address


def level0(path) -> np.ndarray:
    return zarr.open_group(str(path), mode="r")["0"][0]


def render(argv, scheduler, capsys) -> int:
    status = render_main(["--scheduler", scheduler, "--tile", "16", "--no-progress", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status


def test_render_accepts_every_spelling(hkl_folder, scheduler, capsys):
    images = {}
    spellings = {
        "quoted": ["--nanobragg", HKL, "-o", "a.zarr"],
        "equals": ["-o", "b.zarr", f"--nanobragg={HKL}"],
        "dashdash": ["-o", "c.zarr", "--", *shlex.split(HKL)],
    }
    for name, argv in spellings.items():
        assert render(argv, scheduler, capsys) == 0, name
        images[name] = level0(hkl_folder / argv[argv.index("-o") + 1])
    assert images["quoted"].shape == (24, 24) and images["quoted"].max() > 0
    for name in ("equals", "dashdash"):
        np.testing.assert_array_equal(images[name], images["quoted"])


def test_render_strings_starting_like_its_own_options(hkl_folder, scheduler, capsys):
    assert render(["--nanobragg", OVERSAMPLE, "-o", "o.zarr"], scheduler, capsys) == 0
    assert render(["-o", "w.zarr", "--", *shlex.split(PREFIXED[2])], scheduler, capsys) == 0
    assert level0(hkl_folder / "w.zarr").max() > 0
    # a render option inside the nanoBragg string is a nanoBragg error naming it, exit 2
    assert render(["--nanobragg", "--tile 8 " + CELL, "-o", "t.zarr"], scheduler, capsys) == 2


def test_render_bad_output_path_is_one_line_exit_2(hkl_folder, capsys):
    status = render_main(["-o", "/proc/x.zarr", "--no-progress", "--", *shlex.split(HKL)])
    err = capsys.readouterr().err.strip()
    assert status == 2
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "-o" in err and "/proc/x.zarr" in err


def bench(argv, capsys) -> dict:
    assert bench_main(["--repeat", "1", "--compile", "off", *argv]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_accepts_every_spelling(hkl_folder, capsys):
    for argv in (
        ["--nanobragg", HKL],
        [f"--nanobragg={HKL}"],
        ["--", *shlex.split(HKL)],
        ["--nanobragg", OVERSAMPLE],
        ["--", *shlex.split(PREFIXED[1])],
    ):
        result = bench(argv, capsys)
        assert result["pixels"] == 24 * 24, argv


def test_bench_bad_input_exit_2(hkl_folder, capsys):
    assert bench_main(["--repeat", "1", "--", "-cell", "100", "100", "-default_F", "1"]) == 2
    err = capsys.readouterr().err
    assert "-cell" in err and "6 numbers" in err and "Traceback" not in err
    assert bench_main(["--repeat", "1"]) == 2
    assert "--spec" in capsys.readouterr().err


def test_render_spec_file_in_the_new_format(hkl_folder, scheduler, capsys):
    from engine.resolve import parse_nanobragg
    from tiling.job import JobSpec

    assert render(["--nanobragg", HKL, "-o", "n.zarr"], scheduler, capsys) == 0
    job = JobSpec(parse_nanobragg(shlex.split(HKL)).experiment, tile=16)
    (hkl_folder / "job.json").write_text(job.model_dump_json(indent=1))
    assert render(["--spec", "job.json", "-o", "s.zarr"], scheduler, capsys) == 0
    np.testing.assert_array_equal(level0(hkl_folder / "s.zarr"), level0(hkl_folder / "n.zarr"))
    status = render(
        ["--spec", "job.json", "-o", "x.zarr", "--", *shlex.split(HKL)], scheduler, capsys
    )
    assert status == 2
