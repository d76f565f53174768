"""The job state machine (service/lifecycle.py): the one table of allowed transitions."""

from __future__ import annotations

from typing import get_args

import pytest

from service.errors import STATUS_CODES, Conflict
from service.lifecycle import (
    TRANSITIONS,
    IllegalTransition,
    State,
    Transition,
    is_final,
    next_state,
)

STATES: tuple[str, ...] = get_args(State)
EVENTS: tuple[str, ...] = get_args(Transition)


def test_a_job_is_accepted_runs_and_succeeds() -> None:
    path = ["accept", "start", "progress", "tile_done", "frame_done", "succeed"]
    states = []
    state = "new"
    for event in path:
        state = next_state("j", state, event)
        states.append(state)
    assert states == ["accepted", "running", "running", "running", "running", "successful"]


@pytest.mark.parametrize("event", ["fail", "dismiss"])
def test_queued_and_running_jobs_can_fail_or_be_dismissed(event: str) -> None:
    final = {"fail": "failed", "dismiss": "dismissed"}[event]
    assert next_state("j", "accepted", event) == next_state("j", "running", event) == final


def test_jobs_of_a_previous_process_are_queued_again() -> None:
    assert next_state("j", "running", "requeue") == "accepted"
    assert next_state("j", "accepted", "requeue") == "accepted"


def test_nothing_leaves_a_final_state() -> None:
    for state in ("successful", "failed", "dismissed"):
        assert is_final(state)
        for event in EVENTS:
            with pytest.raises(IllegalTransition) as err:
                next_state("abc", state, event)
            assert state in str(err.value) and event in str(err.value) and "abc" in str(err.value)


def test_every_pair_outside_the_table_is_illegal_and_a_409() -> None:
    illegal = [(s, e) for s in STATES for e in EVENTS if (s, e) not in TRANSITIONS]
    assert ("accepted", "tile_done") in illegal and ("new", "start") in illegal
    for state, event in illegal:
        with pytest.raises(IllegalTransition):
            next_state("j", state, event)
    assert issubclass(IllegalTransition, Conflict) and STATUS_CODES[Conflict] == 409
    assert {s for s, _ in TRANSITIONS} | set(TRANSITIONS.values()) <= set(STATES)
