"""Small helpers shared by the functions that build the OOD sets (`ood`, `letters`, `photos`):
argument checks with one-line errors, seeded generators, and uint8 image stacks."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .mnistify import CANVAS_SIZE

SIZE = CANVAS_SIZE


def check_n(n: object) -> int:
    """Validate a requested number of images."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    return int(n)


def seeded_rng(seed: object) -> np.random.Generator:
    """A numpy Generator for `seed`, with a clear error for a bad seed."""
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}") from exc


def stack_images(images: list[np.ndarray]) -> np.ndarray:
    """Stack 28x28 uint8 images, giving (0, 28, 28) for an empty list."""
    if not images:
        return np.zeros((0, SIZE, SIZE), dtype=np.uint8)
    return np.stack(images).astype(np.uint8, copy=False)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """Map floats in 0..1 to uint8 0..255 (clipping, rounding)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)
