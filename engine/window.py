"""Rectangular pixel windows of a detector frame."""

from typing import NamedTuple


class Window(NamedTuple):
    """Half-open pixel bounds of a frame rectangle: rows [slow0, slow1), columns [fast0, fast1)."""

    slow0: int
    slow1: int
    fast0: int
    fast1: int

    @property
    def shape(self) -> tuple[int, int]:
        return (self.slow1 - self.slow0, self.fast1 - self.fast0)

    @property
    def pixels(self) -> int:
        return max(0, self.slow1 - self.slow0) * max(0, self.fast1 - self.fast0)

    @classmethod
    def full(cls, slow_pixels: int, fast_pixels: int) -> "Window":
        return cls(0, slow_pixels, 0, fast_pixels)

    def validate(self, slow_pixels: int, fast_pixels: int) -> "Window":
        """Return self if it lies inside a slow_pixels x fast_pixels frame; else ValueError."""
        if not (0 <= self.slow0 <= self.slow1 <= slow_pixels):
            raise ValueError(
                f"window slow range [{self.slow0}, {self.slow1}) outside 0..{slow_pixels}"
            )
        if not (0 <= self.fast0 <= self.fast1 <= fast_pixels):
            raise ValueError(
                f"window fast range [{self.fast0}, {self.fast1}) outside 0..{fast_pixels}"
            )
        return self
