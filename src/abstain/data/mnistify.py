"""Turn an arbitrary image into a 28x28 MNIST-style digit image.

The steps follow LeCun's MNIST preprocessing:

1. grayscale (an alpha channel is composited onto white first);
2. contrast-stretch to the full range;
3. ink-on-black polarity (bright strokes on a dark background), inverting
   automatically when the border is brighter than the image as a whole;
4. crop to the bounding box of the ink;
5. resize, keeping the aspect ratio, so that the longer side is 20 px
   (antialiased);
6. paste into a black 28x28 canvas so that the centre of mass of the ink
   lies at pixel (14, 14).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from ..errors import InputError
from ..tensors import mass_centres

log = logging.getLogger(__name__)

ImageLike = Union[str, Path, Image.Image, np.ndarray]

CANVAS_SIZE = 28
BOX_SIZE = 20
# A pixel counts as ink when it is above this fraction of the stretched range.
INK_THRESHOLD = 0.1

_LUMA = np.array([0.299, 0.587, 0.114])
_GRAY_MODES = frozenset({"1", "L", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})
_ALPHA_MODES = frozenset({"RGBA", "RGBa", "LA", "La", "PA"})


def load_image(path: str | Path) -> np.ndarray:
    """Read an image file into a numpy array.

    Returns an HxW array for grayscale files (uint8, uint16, int32, float32
    or bool, as stored), HxWx4 uint8 for files with transparency and HxWx3
    uint8 for everything else.

    Raises:
        InputError: the file is missing or is not a readable image.
    """
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p} is a directory; pass image files (e.g. {p}/*.png)")
    if not p.is_file():
        raise InputError(f"image file not found: {p}")
    try:
        with Image.open(p) as img:
            img.load()
            return _pil_to_array(img)
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise InputError(f"cannot read image file {p}: corrupt or not an image ({exc})") from exc


def _pil_to_array(img: Image.Image) -> np.ndarray:
    """Convert a PIL image to HxW (grayscale), HxWx3 (RGB) or HxWx4 (RGBA)."""
    if img.mode in _GRAY_MODES:
        return np.array(img)
    has_alpha = img.mode in _ALPHA_MODES or "transparency" in img.info
    return np.array(img.convert("RGBA" if has_alpha else "RGB"))


def _coerce(image: object) -> np.ndarray:
    """Turn a path, PIL image or numpy array into a numpy array."""
    if isinstance(image, (str, Path)):
        return load_image(image)
    if isinstance(image, Image.Image):
        return _pil_to_array(image)
    if isinstance(image, np.ndarray):
        return image
    raise InputError(
        f"expected an image path, a PIL.Image or a numpy array, got {type(image).__name__}"
    )


def _int_scale(arr: np.ndarray) -> float:
    """Full-scale value for an integer image: 255, 65535, or its maximum."""
    peak = float(arr.max())
    if peak <= 255:
        return 255.0
    return 65535.0 if peak <= 65535 else peak


def _as_float(arr: np.ndarray) -> np.ndarray:
    """Validate an image array and scale it to floats, nominally in 0..1.

    bool is 0/1, integers are divided by their full scale (see `_int_scale`),
    floats are taken as 0..1 unless their maximum exceeds 1, in which case
    they are taken as 0..255.
    """
    if arr.size == 0:
        raise InputError(f"image array is empty (shape {arr.shape})")
    if arr.ndim not in (2, 3):
        raise InputError(
            "image array must be HxW or HxWxC (2 or 3 dims), "
            f"got {arr.ndim} dims (shape {arr.shape})"
        )
    if arr.ndim == 3 and arr.shape[2] not in (1, 3, 4):
        raise InputError(
            "image array must have 1, 3 (RGB) or 4 (RGBA) channels, "
            f"got {arr.shape[2]} (shape {arr.shape})"
        )
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / _int_scale(arr)
    if np.issubdtype(arr.dtype, np.floating):
        x = arr.astype(np.float64)
        if not np.isfinite(x).all():
            raise InputError("image array contains NaN or infinite values")
        return x / 255.0 if x.max() > 1.0 else x
    raise InputError(f"unsupported image dtype {arr.dtype}; use uint8, bool or float")


def _to_gray(x: np.ndarray) -> np.ndarray:
    """Collapse channels to luminance; alpha is composited onto white first."""
    if x.ndim == 2:
        return x
    if x.shape[2] == 1:
        return x[..., 0]
    rgb = x[..., :3]
    if x.shape[2] == 4:
        alpha = np.clip(x[..., 3:4], 0.0, 1.0)
        rgb = rgb * alpha + (1.0 - alpha)
    return rgb @ _LUMA


def _stretch(gray: np.ndarray) -> np.ndarray:
    """Map the image linearly onto 0..1; a constant image becomes all zeros."""
    lo, hi = float(gray.min()), float(gray.max())
    if hi - lo < 1e-12:
        return np.zeros_like(gray)
    return (gray - lo) / (hi - lo)


def needs_invert(gray: np.ndarray) -> bool:
    """True when the border is brighter on average than the whole image.

    A dark-ink-on-light-paper image has a bright border and a darker mean, so
    it needs inverting; an MNIST-style image has a black border and does not.
    (The image mean is used rather than its median: for thin strokes on a
    plain background the median equals the background, which makes a tie.)
    """
    border = np.concatenate([gray[0, :], gray[-1, :], gray[:, 0], gray[:, -1]])
    return bool(border.mean() > gray.mean())


def _crop_to_ink(gray: np.ndarray) -> np.ndarray:
    """Crop to the bounding box of pixels above INK_THRESHOLD (all if none)."""
    ink = gray > INK_THRESHOLD
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:
        return gray
    return gray[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _resize_longest(patch: np.ndarray, box: int = BOX_SIZE) -> np.ndarray:
    """Resize with LANCZOS so the longer side is `box` px, keeping the aspect ratio."""
    h, w = patch.shape
    scale = box / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    img = Image.fromarray(np.ascontiguousarray(patch, dtype=np.float32))
    resized = np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)
    return np.clip(resized, 0.0, 1.0)


def center_by_mass(patch: np.ndarray, size: int = CANVAS_SIZE) -> np.ndarray:
    """Paste `patch` into a zero canvas with its centre of mass at (size/2, size/2).

    The shift is rounded to whole pixels and clipped so that the patch stays
    entirely inside the canvas. A patch with no mass is centred geometrically.
    """
    h, w = patch.shape
    if h > size or w > size:
        raise InputError(f"patch of shape {patch.shape} does not fit a {size}x{size} canvas")
    cy, cx = mass_centres(patch[None])[0]
    top = int(np.clip(round(size / 2 - cy), 0, size - h))
    left = int(np.clip(round(size / 2 - cx), 0, size - w))
    canvas = np.zeros((size, size), dtype=patch.dtype)
    canvas[top:top + h, left:left + w] = patch
    return canvas


def mnistify(image: ImageLike, *, invert: bool | None = None) -> np.ndarray:
    """Convert an image to a 28x28 uint8 MNIST-style image (bright ink on black).

    Args:
        image: a file path, a PIL image, or a numpy array of shape HxW, HxWx3
            or HxWx4 (uint8 0..255, bool, or float 0..1) of any size.
        invert: True to invert (dark ink on light paper), False to keep the
            polarity, None to decide from the border (see `needs_invert`).

    Returns:
        A (28, 28) uint8 array whose brightest pixel is 255 (unless the image
        is blank), with the ink fitted into a 20x20 box and centred by mass.

    Raises:
        InputError: unreadable file, empty array, NaN/inf values, wrong number
            of dimensions or channels, or an unsupported type.
    """
    if invert not in (None, True, False):
        raise InputError(f"invert must be True, False or None, got {invert!r}")
    gray = _stretch(_to_gray(_as_float(_coerce(image))))
    if invert is None:
        invert = needs_invert(gray)
        log.debug("mnistify: automatic polarity, invert=%s", invert)
    if invert:
        gray = 1.0 - gray
    canvas = center_by_mass(_resize_longest(_crop_to_ink(gray)))
    peak = float(canvas.max())
    if peak > 0:
        canvas = canvas / peak
    return np.round(canvas * 255.0).astype(np.uint8)
