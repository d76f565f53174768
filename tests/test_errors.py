"""One error hierarchy and one exception -> exit status table for every subcommand."""

from __future__ import annotations

import pickle

import pytest

from engine.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    InputError,
    UserInputError,
    exit_status,
    run_command,
)
from tiling.store import StoreMismatchError


@pytest.mark.parametrize(
    "exc",
    [InputError("-cell", "takes 6 numbers"), StoreMismatchError("out.zarr holds another job")],
)
def test_user_input_errors_exit_2_and_survive_pickling(exc):
    assert isinstance(exc, UserInputError) and isinstance(exc, ValueError)
    again = pickle.loads(pickle.dumps(exc))  # as when raised on a Dask worker
    assert type(again) is type(exc) and str(again) == str(exc)
    assert exit_status(again) == EXIT_BAD_INPUT == 2


def test_exit_status_table():
    assert exit_status(FileNotFoundError(2, "gone")) == EXIT_FAILED
    assert exit_status(KeyboardInterrupt()) == EXIT_INTERRUPTED
    assert exit_status(RuntimeError("a bug")) is None


def test_run_command_prints_one_line_and_lets_bugs_through(capsys):
    def bad_input():
        raise InputError("-detpixels", "too many pixels")

    assert run_command("braggtile x", bad_input) == 2
    assert capsys.readouterr().err == "braggtile x: error: -detpixels: too many pixels\n"

    def bug():
        raise RuntimeError("a bug")

    with pytest.raises(RuntimeError):
        run_command("braggtile x", bug)
