"""The life of a job as a state machine: every allowed transition in one table.

States are the job's ``status`` (:data:`service.models.Status`) plus ``new`` (not yet
recorded). An event names a transition; :func:`next_state` gives the state it leads to or
raises :class:`IllegalTransition` (a 409 over HTTP). :class:`service.jobs.JobManager` has one
method per event and is the only writer of a job's state.
"""

from __future__ import annotations

from typing import Literal

from service.errors import Conflict
from service.models import FINAL

State = Literal["new", "accepted", "running", "successful", "failed", "dismissed"]
Transition = Literal[
    "accept", "start", "progress", "tile_done", "frame_done", "succeed", "fail", "dismiss",
    "requeue",
]  # fmt: skip

#: (state, event) -> the state it leads to. Anything not here is illegal.
TRANSITIONS: dict[tuple[State, Transition], State] = {
    ("new", "accept"): "accepted",  # submitted: recorded, queued
    ("accepted", "start"): "running",  # a render thread took it
    ("running", "progress"): "running",  # tiles found already in the store (resume)
    ("running", "tile_done"): "running",
    ("running", "frame_done"): "running",
    ("running", "succeed"): "successful",
    ("accepted", "fail"): "failed",
    ("running", "fail"): "failed",
    ("accepted", "dismiss"): "dismissed",
    ("running", "dismiss"): "dismissed",
    ("accepted", "requeue"): "accepted",  # left queued by a previous process: queued again
    ("running", "requeue"): "accepted",  # left running by a previous process: queued again
}


class IllegalTransition(Conflict):
    """An event that the job's state does not allow (e.g. dismissing a successful job)."""

    def __init__(self, job_id: str, state: str, event: str):
        super().__init__(f"job {job_id} is {state}: '{event}' is not allowed in that state")
        self.state, self.event = state, event


def next_state(job_id: str, state: State, event: Transition) -> State:
    """The state ``event`` leads ``state`` to; raises :class:`IllegalTransition` if none."""
    new = TRANSITIONS.get((state, event))
    if new is None:
        raise IllegalTransition(job_id, state, event)
    return new


def is_final(state: str) -> bool:
    """Whether a job in ``state`` is finished (no transition leaves it)."""
    return state in FINAL
