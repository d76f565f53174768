"""braggtile settings: the ``braggtile`` namespace of ``dask.config``.

Defaults ship in ``engine/braggtile.yaml`` (loaded into dask's defaults on import, as
dask-jobqueue does with its jobqueue.yaml); dask config files, ``DASK_BRAGGTILE__...``
environment variables and ``dask.config.set`` override them. ``BRAGGTILE_COMPILE``
(``1``/``0``/``auto``) is an alias of ``braggtile.compile.mode`` below those.
"""

from __future__ import annotations

import os
from typing import Any

import dask.config
import yaml

COMPILE_ALIAS = "BRAGGTILE_COMPILE"
#: Columns of a compiled kernel block (engine/kernel.py): on a CPU, the default tile edge
#: (512), so tiles of 512 and multiples are never padded; on a GPU, wider blocks fill the
#: device. The tiling graph (torch-free) puts narrower tiles side by side to fill a block.
BLOCK_COLS = {"cpu": 512, "cuda": 2048}
_DEFAULTS = os.path.join(os.path.dirname(__file__), "braggtile.yaml")
_MODES = {
    "on": "on", "1": "on", "true": "on", "yes": "on",
    "off": "off", "0": "off", "false": "off", "no": "off",
    "auto": "auto",
}  # fmt: skip


def _load_defaults() -> None:
    with open(_DEFAULTS, encoding="utf-8") as stream:
        dask.config.update_defaults(yaml.safe_load(stream))
    alias = os.environ.get(COMPILE_ALIAS)
    if alias is not None:  # a default: config files, DASK_ variables and set() still win
        dask.config.update_defaults({"braggtile": {"compile": {"mode": alias.strip()}}})


_load_defaults()


def get(key: str) -> Any:
    """The value of ``braggtile.<key>`` (e.g. ``"tiling.cached-frames"``)."""
    try:
        return dask.config.get(f"braggtile.{key}")
    except KeyError:
        # a dask.config.set of braggtile keys made before this module was imported removes the
        # whole namespace, defaults included, when it exits: load them again
        _load_defaults()
        return dask.config.get(f"braggtile.{key}")


def integer(key: str) -> int:
    """``braggtile.<key>`` as a count, an integer >= 0 (a string of one from an environment
    variable too); an InputError naming the setting otherwise."""
    from engine.errors import InputError  # engine.errors imports nothing of the engine

    value = get(key)
    try:
        number = int(str(value).strip())  # no float or bool: str(4.5), str(True) refuse
    except ValueError:
        number = -1
    if number < 0:
        raise InputError(f"braggtile.{key}", f"must be an integer >= 0, got {value!r}")
    return number


def compile_mode() -> str:
    """``braggtile.compile.mode`` as "on", "off" or "auto" (YAML's booleans accepted)."""
    value = get("compile.mode")
    if isinstance(value, bool):
        return "on" if value else "off"
    mode = _MODES.get(str(value).strip().lower())
    if mode is None:
        raise ValueError(f"braggtile.compile.mode must be on, off or auto, got {value!r}")
    return mode
