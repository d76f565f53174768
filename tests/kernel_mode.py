"""The one switch the tests use to pick the eager or the compiled kernel."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import dask.config

#: Kernel modes a test can ask for: the eager torch kernel, or the compiled kernel.
KERNELS = ("eager", "compiled")
_SETTING = {"eager": "off", "compiled": "on"}
#: The environment variable of ``braggtile.compile.mode``, for subprocesses.
ENV = "DASK_BRAGGTILE__COMPILE__MODE"


@contextmanager
def kernel(mode: str, *, fallback_is_error: bool = True) -> Iterator[None]:
    """Render with the ``mode`` kernel whatever the frame size (not ``auto``'s size threshold).

    Applies in this process (``braggtile.compile.mode``) and to subprocesses started meanwhile
    (its environment variable). In ``compiled`` mode a fall-back to the eager kernel is an
    error (unless ``fallback_is_error`` is False), so a test cannot pass on the wrong kernel.
    """
    setting = _SETTING[mode]
    before = os.environ.get(ENV)
    os.environ[ENV] = setting
    try:
        with dask.config.set({"braggtile.compile.mode": setting}), warnings.catch_warnings():
            if mode == "compiled" and fallback_is_error:
                warnings.filterwarnings("error", r".*compiled kernel", RuntimeWarning)
            yield
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before
