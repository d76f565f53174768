"""braggtile engine: nanoBragg physics rendered by torch for any pixel window of a frame.

Importing the package is light (no torch): the rendering names below load on first use, so
the experiment model (:mod:`engine.model`) and settings serve schemas and metadata alone.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from engine.errors import InputError
from engine.window import Window

if TYPE_CHECKING:
    import torch

    from engine.frame import FrameSetup
    from engine.kernel import render_window
    from engine.model import Experiment
    from engine.setup import prepare_frame

__version__ = "0.1.0"
__all__ = [
    "Experiment",
    "FrameSetup",
    "InputError",
    "Window",
    "prepare_frame",
    "render",
    "render_window",
    "resolve_device",
]

_LAZY = {
    "Experiment": "engine.model",
    "FrameSetup": "engine.frame",
    "prepare_frame": "engine.setup",
    "render_window": "engine.kernel",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' -> CUDA when available else CPU; 'cuda' without a GPU raises InputError."""
    import torch

    name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError("device", "CUDA was requested but no CUDA device is available")
    return torch.device(name)


def render(
    experiment: Experiment,
    window: Window | tuple[int, int, int, int] | None = None,
    dtype: torch.dtype | str = "float32",
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Render ``window`` (slow0, slow1, fast0, fast1; default the whole frame) of ``experiment``."""
    from engine.kernel import render_window
    from engine.setup import prepare_frame

    setup = prepare_frame(experiment, dtype, resolve_device(device))
    det = experiment.detector
    window = (
        Window(*window) if window is not None else Window.full(det.slow_pixels, det.fast_pixels)
    )
    return render_window(setup, window)
