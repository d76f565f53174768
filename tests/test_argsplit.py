"""Splitting a nanoBragg argument string (``engine.argsplit``): shlex's result in linear work.

Proves: for any text of blanks, quotes, backslashes and ordinary characters the split equals
``shlex.split`` (or both refuse it); the work of splitting and parsing a long argument list
grows linearly with the number of arguments and does not grow with an argument's length
(``shlex`` builds a token one character at a time: quadratic; 2 MiB took 45 s of a server).
Work is counted deterministically as Python line events, not timed.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.argsplit import split_arguments
from engine.cli_args import parse_args

SHELLISH = st.text(alphabet=st.sampled_from(list(" \t\r\n'\"\\ab-1.é#$")), max_size=40)
BASE = "-cell 100 100 100 90 90 90 -N 3 -default_F 100 -detpixels 64"


def outcome(split: Callable[[str], list[str]], text: str) -> list[str] | None:
    try:
        return split(text)
    except ValueError:
        return None


@settings(max_examples=3000, deadline=None)
@given(SHELLISH)
def test_split_equals_shlex(text: str) -> None:
    assert outcome(split_arguments, text) == outcome(shlex.split, text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("-floatfile 'a b.bin' -N 3", ["-floatfile", "a b.bin", "-N", "3"]),
        ('x"y\\"z"\\ w', ['xy"z w']),
        ("'' a", ["", "a"]),
        ('"\\a"', ["\\a"]),
    ],
)
def test_split_examples(text: str, words: list[str]) -> None:
    assert split_arguments(text) == words


@pytest.mark.parametrize("text", ["-N 'unclosed", '"x', "trailing\\"])
def test_unsplittable_text_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        split_arguments(text)


def line_events(func: Callable[..., Any], *args: Any) -> int:
    """Python lines executed by ``func(*args)`` and everything it calls (a deterministic count
    of its work)."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    old = sys.gettrace()
    sys.settrace(tracer)
    try:
        func(*args)
    finally:
        sys.settrace(old)
    return count


def split_and_parse(text: str) -> None:
    parse_args(split_arguments(text))


def test_work_grows_linearly_with_the_number_of_arguments() -> None:
    def work(n: int) -> int:
        return line_events(split_and_parse, BASE + " -N 3" * n)

    small, large = work(500), work(2000)
    assert large > 3 * small  # the count sees the arguments at all
    assert large <= 4 * small, (small, large)


def test_work_does_not_grow_with_an_arguments_length() -> None:
    def work(n: int) -> int:
        return line_events(split_and_parse, f"{BASE} -floatfile 'out{'x' * n}.bin' -N 3")

    assert work(20_000) == work(80_000)
