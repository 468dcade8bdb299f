"""Deterministic image transforms for the invariance sweeps: each maps uint8 (N, 28, 28) images
(ink bright on black) and one step size to uint8 (N, 28, 28) images of the same shape.

Geometry uses scipy.ndimage with linear interpolation and zero (black) fill outside the frame;
rotation and scaling are about the frame's centre (13.5, 13.5), not the digit's centre of mass.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..tensors import as_images, shift_images

CENTRE = 13.5                       # centre of a 28 x 28 frame, in pixel coordinates
_CROSS = ndimage.generate_binary_structure(2, 1)[None]    # (1, 3, 3): plus-shaped, per image


def _uint8(images) -> np.ndarray:
    x = as_images(images, "transform input")
    return x if x.dtype == np.uint8 else np.round(x * 255).astype(np.uint8)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def translate(images, dx: int = 0, dy: int = 0) -> np.ndarray:
    """Move every image dx pixels right and dy pixels down (negative: left / up), zero-filled."""
    return shift_images(_uint8(images), dx=dx, dy=dy)


def rotate(images, degrees: float) -> np.ndarray:
    """Rotate counter-clockwise by `degrees` about the frame's centre (bilinear, zero fill)."""
    x = _uint8(images)
    if float(degrees) % 360 == 0:
        return x.copy()
    out = ndimage.rotate(x.astype(np.float32), float(degrees), axes=(2, 1), reshape=False,
                         order=1, mode="constant", cval=0.0)
    return _to_uint8(out)


def scale(images, factor: float) -> np.ndarray:
    """Zoom by `factor` about the frame's centre (> 1 bigger, < 1 smaller; bilinear, zero fill)."""
    if factor <= 0:
        raise InputError(f"scale: factor must be > 0, got {factor}")
    x = _uint8(images)
    if factor == 1:
        return x.copy()
    inv = 1.0 / float(factor)
    # output pixel p samples the input at c + (p - c) / factor, for each image independently
    matrix = np.diag([1.0, inv, inv])
    offset = np.array([0.0, CENTRE * (1 - inv), CENTRE * (1 - inv)])
    out = ndimage.affine_transform(x.astype(np.float32), matrix, offset=offset, order=1,
                                   mode="constant", cval=0.0)
    return _to_uint8(out)


def thickness(images, steps: int) -> np.ndarray:
    """Grey-level dilation (steps > 0, thicker strokes) or erosion (steps < 0, thinner) with a
    3 x 3 plus-shaped footprint, applied |steps| times; each step moves a stroke edge ~1 px."""
    x = _uint8(images)
    op = ndimage.grey_dilation if steps > 0 else ndimage.grey_erosion
    out = x.copy()
    for _ in range(abs(int(steps))):
        out = op(out, footprint=_CROSS, mode="constant", cval=0)
    return out


def invert(images, amount: float) -> np.ndarray:
    """Contrast inversion blended in: (1 - amount) * x + amount * (255 - x); amount 1 is 255 - x,
    amount 0.5 a flat grey image."""
    if not 0 <= amount <= 1:
        raise InputError(f"invert: amount must lie in [0, 1], got {amount}")
    x = _uint8(images).astype(np.float64)
    return _to_uint8((1 - amount) * x + amount * (255 - x))


def noise(images, sigma: float, seed: int = 0) -> np.ndarray:
    """Add Gaussian noise of standard deviation `sigma` (in units of the full range, so 0.1 is
    25.5 grey levels), then clip. The same standard-normal draws (from `seed`) are scaled at
    every sigma, so the steps of a sweep differ only in the noise level."""
    if sigma < 0:
        raise InputError(f"noise: sigma must be >= 0, got {sigma}")
    x = _uint8(images)
    z = np.random.default_rng(seed).standard_normal(x.shape)
    return _to_uint8(x + 255.0 * float(sigma) * z)
