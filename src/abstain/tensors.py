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


def shift_images(x: np.ndarray, dx: int = 0, dy: int = 0) -> np.ndarray:
    """(N, H, W) images moved dx pixels right and dy down (negative: left / up), zero-filled;
    same dtype."""
    dx, dy = int(dx), int(dy)
    out = np.zeros_like(x)
    h, w = x.shape[1:]
    if abs(dx) >= w or abs(dy) >= h:
        return out
    src = x[:, max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
    out[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
    return out


def mass_centres(x: np.ndarray) -> np.ndarray:
    """(N, H, W) images -> (N, 2) centres of mass of their intensity (row, column); the frame's
    centre for a blank image."""
    x = np.asarray(x)
    h, w = x.shape[1:]
    by_row, by_col = x.sum(2, dtype=np.float64), x.sum(1, dtype=np.float64)
    mass = by_row.sum(1)
    blank = mass <= 0
    mass = np.where(blank, 1.0, mass)
    rows = (by_row * np.arange(h)).sum(1) / mass
    cols = (by_col * np.arange(w)).sum(1) / mass
    centre = np.column_stack([rows, cols])
    centre[blank] = ((h - 1) / 2, (w - 1) / 2)
    return centre


def recentre(x: np.ndarray, target) -> np.ndarray:
    """Move each image by whole pixels so that its centre of mass lies nearest `target`
    (row, column): the centring MNIST's makers applied to every digit (FashionMNIST's makers
    centred each item's bounding box instead, Xiao et al. 2017)."""
    shifts = np.rint(np.asarray(target, np.float64) - mass_centres(x)).astype(int)
    out = np.empty_like(x)
    pairs, which = np.unique(shifts, axis=0, return_inverse=True)
    for k, (dy, dx) in enumerate(pairs):
        idx = np.flatnonzero(which.ravel() == k)
        out[idx] = shift_images(x[idx], dx=dx, dy=dy)
    return out
