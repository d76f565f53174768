"""MKL VML: torch's CPU math kernels chosen once, before any render runs them on two threads.

On the CPU, torch hands contiguous float32 and float64 ``sqrt``, ``exp``, ``log``, ``sin``,
``cos`` and the other functions in :data:`VML_FUNCTIONS` to oneMKL's vector math library
(VML), one call per intra-op thread on its chunk. VML chooses each function's kernel (CPU
instruction set and accuracy) lazily, on that function's first call in the process. In oneMKL
2024.2, the version torch 2.13's wheels bundle, that choice races: when the first call runs on
several threads at once, one thread can run a low-accuracy kernel over its whole chunk, once
(pytorch/pytorch#188792). braggtile saw exactly that: the first render of a fresh
``render --in-process`` process, about one run in 50, had the second thread's half of
``airpath``'s ``sqrt`` wrong by up to 2.8e-4 relative (12 bits), so nearly every pixel of
that window differed from a whole-frame render (by 0.6% for the median pixel).

:func:`resolve_dispatch` calls each function once, on one element (one thread: below torch's
parallel grain), for both dtypes. The modules that use these functions eagerly call it when
they are imported, which Python's import lock makes single-threaded, so every render in the
process finds the kernels already chosen. Later results are bit-identical to those of a
process whose first calls did not race.
"""

from __future__ import annotations

import threading

import torch

#: The unary functions torch 2.13 computes with MKL VML on the CPU (``aten/src/ATen/cpu/vml.h``).
VML_FUNCTIONS = (
    "acos",
    "asin",
    "atan",
    "cos",
    "erf",
    "erfc",
    "erfinv",
    "exp",
    "log",
    "log10",
    "log2",
    "sin",
    "sqrt",
    "tan",
    "tanh",
    "trunc",
)

_lock = threading.Lock()
_resolved = False


def resolve_dispatch() -> None:
    """Make the first call of every VML function, float32 and float64, here and now (once per
    process; about 2 ms)."""
    global _resolved
    with _lock:
        if _resolved:
            return
        for dtype in (torch.float32, torch.float64):
            x = torch.full((1,), 0.5, dtype=dtype)
            for name in VML_FUNCTIONS:
                getattr(torch, name)(x)
        _resolved = True
