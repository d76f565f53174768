"""The table-driven nanoBragg parser: arity, -help, purity, and bad input -> exit status 2."""

from __future__ import annotations

import builtins
import os

import pytest

from engine.cli import main
from engine.cli_args import parse_args
from engine.errors import InputError
from engine.flags import BY_NAME, FLAGS, UNSUPPORTED
from engine.resolve import parse_nanobragg, resolve

BASE = ["-cell", "100", "100", "100", "90", "90", "90", "-default_F", "1"]
TINY = BASE + ["-N", "2", "-detpixels", "8", "-distance", "100", "-noprogress"]
SAMPLE_VALUE = {"f": "1.5", "i": "2", "s": "x"}
WORDS = {
    "-pivot": ["beam"],
    "-dtype": ["float64"],
    "-device": ["cpu"],
    "-detector_abs": ["inf"],
    "-roi": ["0", "3", "0", "3"],
    "-polar": ["0.5"],
    "-oversample": ["2"],
    "-psf": ["gauss:50"],
}


def values_for(name: str) -> list[str]:
    flag = BY_NAME[name]
    return WORDS.get(flag.names[0]) or [SAMPLE_VALUE[k] for k in flag.kinds]


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_every_flag_of_the_table_parses(name):
    parsed = parse_args(BASE + [name, *values_for(name)])
    assert parsed.given[-1] == name


@pytest.mark.parametrize("name", sorted(n for n, f in BY_NAME.items() if f.arity > 0))
def test_a_following_flag_is_never_read_as_a_value(name):
    flag = BY_NAME[name]
    short = values_for(name)[: flag.arity - 1]
    with pytest.raises(InputError) as err:
        parse_args([name, *short, "-default_F", "1"] + BASE)
    assert err.value.field == name
    assert flag.describe_values() in str(err.value)


@pytest.mark.parametrize("name", sorted(n for n, f in BY_NAME.items() if f.arity > 0))
def test_missing_values_at_the_end_name_the_flag(name):
    with pytest.raises(InputError) as err:
        parse_args(BASE + [name])
    assert err.value.field == name


def test_cell_with_two_numbers_names_cell_and_its_six_numbers(capsys):
    assert main(["-cell", "100", "100", "-default_F", "1", "-detpixels", "8"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "-cell" in err and "6 numbers" in err and "-default_F" in err


def test_negative_numbers_are_values_not_flags():
    parsed = parse_args(BASE + ["-misset", "-10", "5", "-3", "-phi", "-2.5", "-Xbeam", "-1"])
    assert parsed.crystal["misset_deg"] == (-10.0, 5.0, -3.0)
    assert parsed.scan["phi0_deg"] == -2.5


@pytest.mark.parametrize(
    "bad",
    [
        ["-N", "1.5"],
        ["-lambda", "one"],
        ["-distance", "nan"],
        ["-pixel", "inf"],
        ["-N", "0"],
        ["-polar", "2"],
        ["-hkl", "-default_F"],
        ["-dtype", "float16"],
        ["-bogus"],
        ["stray"],
        ["-detpixels", "0"],
        ["-oversample", "-1"],
    ],
)
def test_bad_values_name_the_flag(bad):
    with pytest.raises(InputError) as err:
        parse_args(BASE + bad)
    assert err.value.field == bad[0]


def test_help_lists_every_flag_of_the_table(capsys):
    assert main(["-help"]) == 0
    out = capsys.readouterr().out
    for flag in FLAGS:
        for name in flag.names:
            assert f"  {name}" in out or f", {name}" in out, name
    for name in UNSUPPORTED:
        assert name in out


def test_parse_reads_no_file_and_no_clock(monkeypatch, tmp_path):
    """Parsing is pure: files and the clock are touched only by resolve()."""
    monkeypatch.chdir(tmp_path)

    def forbidden(*args, **kwargs):
        raise AssertionError("parse_args touched the outside world")

    argv = ["-mat", "A.mat", "-sourcefile", "s.txt", "-hkl", "P1.hkl", "-misset", "random"]
    with monkeypatch.context() as m:
        for mod, name in ((builtins, "open"), (os.path, "isfile"), (os.path, "exists")):
            m.setattr(mod, name, forbidden)
        import time

        m.setattr(time, "time", forbidden)
        parsed = parse_args(argv + ["-N", "3"])
    assert parsed.refs.mat_file == "A.mat" and parsed.refs.misset_random
    with pytest.raises(InputError) as err:
        resolve(parsed)
    assert err.value.field == "-mat"


def test_random_misset_is_seeded_by_resolve_from_the_clock():
    parsed = parse_args(BASE + ["-misset", "random"])
    a = resolve(parsed, clock=lambda: 4242.0).experiment.crystal.misset_deg
    b = resolve(parse_args(BASE + ["-misset", "random", "-misset_seed", "4242"]))
    assert a == b.experiment.crystal.misset_deg
    assert resolve(parsed, clock=lambda: 7.0).experiment.crystal.misset_deg != a


def test_fdump_is_looked_up_in_the_given_folder(tmp_path):
    parsed = parse_args(["-cell", "100", "100", "100", "90", "90", "90"])
    with pytest.raises(InputError) as err:
        resolve(parsed, cwd=str(tmp_path))
    assert err.value.field == "-hkl"
    (tmp_path / "Fdump.bin").write_bytes(b"")
    crystal = resolve(parsed, cwd=str(tmp_path)).experiment.crystal
    assert crystal.fdump_file == str(tmp_path / "Fdump.bin")


def one_error_line(capsys, *needles: str) -> str:
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err
    assert err.count("\n") == 0, err
    assert err.startswith("braggtile nanobragg: error: ")
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_sourcefile_that_is_not_a_source_list(capsys):
    assert main(TINY + ["-sourcefile", "/etc/passwd"]) == 2
    one_error_line(capsys, "-sourcefile", "/etc/passwd")


def test_missing_input_files_name_flag_and_path(tmp_path, capsys):
    for flag in ("-hkl", "-mat", "-sourcefile"):
        missing = str(tmp_path / f"missing{flag}")
        assert main(TINY + [flag, missing]) == 2
        one_error_line(capsys, flag, missing)


def test_huge_detector_is_refused_before_allocating(capsys):
    assert main(TINY + ["-detpixels", "100000"]) == 2
    one_error_line(capsys, "-detpixels", "100000x100000", "GiB", "limit")


def test_memory_limit_is_configurable(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BRAGGTILE_MEMORY_LIMIT", "1K")
    assert main(TINY + ["-detpixels", "16"]) == 2  # 256 pixels need more than 1 KiB
    one_error_line(capsys, "BRAGGTILE_MEMORY_LIMIT=1K")
    monkeypatch.setenv("BRAGGTILE_MEMORY_LIMIT", "lots")
    assert main(TINY) == 2
    one_error_line(capsys, "BRAGGTILE_MEMORY_LIMIT")
    monkeypatch.setenv("BRAGGTILE_MEMORY_LIMIT", "1G")
    assert main(TINY + ["-floatfile", "f.bin", "-nonoise", "-nopgm", "-intfile", "i.img"]) == 0
    assert os.path.getsize("f.bin") == 8 * 8 * 4


def test_parse_nanobragg_is_parse_then_resolve(in_inputs):
    from reference import case_args

    args = case_args("sourcefile")
    assert parse_nanobragg(args).experiment == resolve(parse_args(args)).experiment
