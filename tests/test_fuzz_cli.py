"""Property: any argument list built from the flag table renders an image or fails with one
line naming what is wrong and exit status 2 -- never a traceback (issue 8, defect 4).

Runs ``braggtile nanobragg``'s ``main()`` in this process on an 8x8 detector (``-detpixels 8``
is forced last), inside a folder holding small valid input files.
"""

from __future__ import annotations

import contextlib
import io
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main
from engine.flags import FLAGS, UNSUPPORTED

ODD_NUMBERS = ["0", "-1", "-7.5", "1e-9", "1e9", "1e300", "nan", "inf", "-inf", "x", ""]
ODD_INTEGERS = ["0", "-1", "1.5", "one", "2147483648", "100000", "100001"]
INPUT_FILES = ["P1.hkl", "A.mat", "src.txt", "missing.file", "/etc/passwd", "no/such/dir/f"]
OUTPUT_FILES = ["out.bin", "img.smv", "no/such/dir/out.bin", ".", ""]
WORDS = [
    "random",
    "rand",
    "inf",
    "beam",
    "sample",
    "float32",
    "float64",
    "cpu",
    "cuda",
    "auto",
    "x",
    "-1",
    "1",
]
INPUT_FLAGS = {"-hkl", "-mat", "-sourcefile"}
OUTPUT_FLAGS = {"-floatfile", "-intfile", "-pgmfile", "-noisefile", "-dump"}
BASE = ["-cell", "60", "70", "80", "90", "90", "90", "-default_F", "10", "-N", "3"]


def value(flag, kind: str) -> st.SearchStrategy[str]:
    odd = st.integers(0, 5).map(lambda n: n == 0)  # one value in six is odd
    if kind == "f":
        plain = st.floats(0.05, 120).map(lambda x: f"{x:.3g}")
        return odd.flatmap(lambda o: st.sampled_from(ODD_NUMBERS) if o else plain)
    if kind == "i":
        plain = st.integers(1, 4).map(str)
        return odd.flatmap(lambda o: st.sampled_from(ODD_INTEGERS) if o else plain)
    names = set(flag.names)
    if names & INPUT_FLAGS:
        return st.sampled_from(INPUT_FILES)
    if names & (OUTPUT_FLAGS | {"-floatimage", "-intimage", "-pgmimage", "-noiseimage"}):
        return st.sampled_from(OUTPUT_FILES)
    return st.sampled_from(WORDS)


@st.composite
def flag_tokens(draw) -> list[str]:
    flag = draw(st.sampled_from(FLAGS))
    name = draw(st.sampled_from(flag.names))
    tokens = [name] + [draw(value(flag, kind)) for kind in flag.kinds]
    if flag.kinds and draw(st.integers(0, 9)) == 0:  # too few values
        tokens = tokens[: draw(st.integers(1, len(tokens) - 1))]
    return tokens


@st.composite
def argument_lists(draw) -> list[str]:
    argv = list(BASE) if draw(st.integers(0, 7)) else []
    for tokens in draw(st.lists(flag_tokens(), max_size=7)):
        argv += tokens
    if draw(st.integers(0, 14)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(st.sampled_from(UNSUPPORTED + ("-zz",))))
    return argv + ["-detpixels", "8", "-noprogress", "-nocompile"]


def write_inputs(folder) -> None:
    (folder / "P1.hkl").write_text("0 0 0 10\n1 0 0 20\n0 1 0 30\n0 0 1 40\n1 1 1 5\n")
    (folder / "A.mat").write_text(
        " -0.0120 0.0042 0.0071\n 0.0035 0.0110 -0.0060\n -0.0070 0.0050 -0.0100\n"
    )
    (folder / "src.txt").write_text("-10 0 0 1 1e-10\n-10 0.01 0 1 1.1e-10\n")


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=argument_lists())
def test_any_argument_list_renders_or_fails_cleanly(argv, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir(exist_ok=True)
    write_inputs(folder)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(folder), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    message = err.getvalue().strip()
    assert status in (0, 2), (argv, status, message)
    if status == 0:
        assert "max_I" in out.getvalue(), argv
    else:
        lines = [line for line in message.splitlines() if line.strip()]
        assert len(lines) == 1, (argv, message)
        assert lines[0].startswith("braggtile nanobragg: error: "), (argv, message)


def test_help_is_not_an_error():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["-cell", "1", "-help"]) == 0
    assert "-detpixels" in out.getvalue()
    assert os.linesep in out.getvalue()
