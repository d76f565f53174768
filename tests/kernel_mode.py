"""The one switch the tests use to pick the eager or the compiled (fused) kernel."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from engine import fused

#: Kernel modes a test can ask for: the eager torch kernel, or the compiled fused kernel.
KERNELS = ("eager", "compiled")
_SETTING = {"eager": "off", "compiled": "on"}


@contextmanager
def kernel(mode: str, *, fallback_is_error: bool = True) -> Iterator[None]:
    """Render with the ``mode`` kernel whatever the frame size (not ``auto``'s size threshold).

    Applies to direct ``render_window`` calls and to ``braggtile nanobragg`` runs (which read the
    environment).  In ``compiled`` mode a fall-back to the eager kernel is an error (unless
    ``fallback_is_error`` is False), so a test cannot pass on the wrong kernel.
    """
    setting = _SETTING[mode]
    before = os.environ.get(fused.COMPILE_ENV)
    os.environ[fused.COMPILE_ENV] = setting
    fused.set_compile(setting)
    try:
        with warnings.catch_warnings():
            if mode == "compiled" and fallback_is_error:
                warnings.filterwarnings("error", r".*compiled kernel", RuntimeWarning)
            yield
    finally:
        fused.set_compile(None)
        if before is None:
            os.environ.pop(fused.COMPILE_ENV, None)
        else:
            os.environ[fused.COMPILE_ENV] = before
