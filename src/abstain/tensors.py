"""Conversions between user arrays (uint8 0-255 or float 0-1) and model tensors."""
from __future__ import annotations

import hashlib

import numpy as np
import torch

from .errors import InputError


def images_digest(images: np.ndarray) -> str:
    """Hash of an image array's type, shape and bytes: the key of every cache of per-image results."""
    a = np.ascontiguousarray(images)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a)                                  # the buffer itself, no copy
    return h.hexdigest()[:16]


def to_tensor(x: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """(N, 28, 28) uint8 or float in [0, 1] -> float32 tensor (N, 1, 28, 28) in [0, 1]."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        t = torch.from_numpy(x).float().div_(255.0)
    else:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return t.unsqueeze(1).to(device)


def as_images(x, what: str = "input") -> np.ndarray:
    """Validate a user array as N x 28 x 28 images and return uint8 or float32 in [0, 1]."""
    x = np.asarray(x)
    if x.ndim == 2 and x.shape == (28, 28):
        x = x[None]
    if x.ndim == 4 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise InputError(f"{what}: expected shape (N, 28, 28), got {x.shape}")
    if len(x) == 0:
        raise InputError(f"{what}: no images (shape {x.shape})")
    if x.dtype == np.uint8:
        return x
    if x.dtype == bool:
        return x.astype(np.float32)
    if np.issubdtype(x.dtype, np.integer):
        if x.min() < 0 or x.max() > 255:
            raise InputError(f"{what}: integer values must lie in 0-255 (got {x.min()}..{x.max()})")
        return x.astype(np.uint8)
    if not np.issubdtype(x.dtype, np.floating):
        raise InputError(f"{what}: dtype {x.dtype} is not numeric; use uint8 0-255 or float 0-1")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    if x.min() < 0 or x.max() > 1:
        raise InputError(f"{what}: float values must lie in 0-1 (got {x.min():g}..{x.max():g}); "
                         "pass uint8 for 0-255")
    return x
