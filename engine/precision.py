"""Precision names ("float32", "float64") and their torch dtypes; imports torch only on use."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from engine.errors import InputError

if TYPE_CHECKING:
    import torch

Precision = Literal["float32", "float64"]
PRECISIONS: tuple[str, ...] = ("float32", "float64")


def torch_dtype(precision: str | torch.dtype, field: str = "dtype") -> torch.dtype:
    """The torch dtype of ``precision`` (a name or a dtype); InputError naming ``field``."""
    import torch

    if isinstance(precision, torch.dtype):
        if precision in (torch.float32, torch.float64):
            return precision
    elif precision in PRECISIONS:
        return getattr(torch, precision)
    raise InputError(field, f"must be float32 or float64, got {precision}")


def precision_name(dtype: torch.dtype) -> str:
    """ "float32" or "float64" for a torch dtype."""
    return str(dtype).removeprefix("torch.")
