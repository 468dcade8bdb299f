"""Offline out-of-distribution (OOD) image sets for MNIST.

Every set is built by a function ``make(n, seed, **kw)`` that returns ``n``
images as a ``(n, 28, 28)`` uint8 array (bright ink on black, like MNIST),
the same for the same seed. The sets are registered in `OOD_SETS` with a
kind:

* ``"far"``: clearly not digits (noise, letters, photo crops);
* ``"shift"``: digits in another style (covariate shift, reported apart);
* ``"transform"``: transformed MNIST test images, passed as ``base=``.

Nothing here downloads anything: letters come from installed fonts (`letters`),
photos from scikit-image's bundled images (`photos`), digits from scikit-learn's
bundled set.
FashionMNIST is not here; it is real data loaded elsewhere.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

from ..errors import InputError
from ..tensors import shift_images
from .letters import letters, letters_mnistified
from .mnistify import center_by_mass
from .photos import chicken_image, natural_crops
from .set_helpers import SIZE, check_n, seeded_rng, to_uint8

log = logging.getLogger(__name__)

KINDS = ("far", "shift", "transform")
SHIFT_DISTANCES = (6, 8)  # px along each moved axis, inclusive
_DIRECTIONS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


@dataclass(frozen=True)
class OODSpec:
    """One registered OOD set: ``make(n, seed, **kw)`` builds ``n`` images."""

    name: str
    description: str
    kind: str
    default_n: int
    make: Callable[..., np.ndarray]


# --------------------------------------------------------------------------- noise


def gaussian_noise(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """Pixels drawn i.i.d. from N(0.5, 0.25^2), clipped to 0..1, scaled to 0..255."""
    n = check_n(n)
    return to_uint8(seeded_rng(seed).normal(0.5, 0.25, size=(n, SIZE, SIZE)))


def uniform_noise(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """Pixels drawn i.i.d. uniformly from the integers 0..255."""
    n = check_n(n)
    return seeded_rng(seed).integers(0, 256, size=(n, SIZE, SIZE), dtype=np.uint8)


# --------------------------------------------------------------------------- sklearn digits


def _digit_to_mnist(digit: np.ndarray) -> np.ndarray:
    """One 8x8 scikit-learn digit (0..16) to 28x28 uint8: 20x20 bilinear, centred by mass."""
    small = Image.fromarray((digit / 16.0).astype(np.float32))
    big = np.asarray(small.resize((20, 20), Image.Resampling.BILINEAR), dtype=np.float64)
    return to_uint8(center_by_mass(np.clip(big, 0.0, 1.0)))


@functools.lru_cache(maxsize=1)
def _sklearn_digits_all() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 scikit-learn digits as 28x28 uint8 images, with their labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.stack([_digit_to_mnist(d) for d in bunch.images])
    labels = np.asarray(bunch.target, dtype=np.int64)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _sklearn_indices(n: int, seed: int, total: int) -> np.ndarray:
    """All indices in order if n >= total, else n sorted indices drawn without replacement."""
    if n >= total:
        if n > total:
            log.warning("sklearn_digits has only %d images; returning all of them, not %d",
                        total, n)
        return np.arange(total)
    return np.sort(seeded_rng(seed).choice(total, size=n, replace=False))


def sklearn_digits(n: int = 1797, seed: int = 0, **_: object) -> np.ndarray:
    """scikit-learn's 8x8 digits upscaled to 20x20 and centred by mass in 28x28.

    There are only 1797 images: a larger n is capped at 1797 (so the result
    may have fewer than n rows) rather than repeating images. With n >= 1797
    all images are returned in their original order and the seed is unused;
    otherwise n distinct images are drawn with the seed, in original order.
    Labels for the same (n, seed) come from `sklearn_digits_labels`.
    """
    images, _labels = _sklearn_digits_all()
    return images[_sklearn_indices(check_n(n), seed, len(images))].copy()


def sklearn_digits_labels(n: int = 1797, seed: int = 0) -> np.ndarray:
    """int64 labels 0..9 matching ``sklearn_digits(n, seed)`` row for row."""
    _images, labels = _sklearn_digits_all()
    return labels[_sklearn_indices(check_n(n), seed, len(labels))].copy()


# --------------------------------------------------------------------------- transforms


def _check_base(base: object) -> np.ndarray:
    """Validate the MNIST test images that transform sets start from."""
    if base is None:
        raise InputError(
            "this OOD set transforms MNIST test images: pass base=<(N, 28, 28) uint8 array>"
        )
    arr = np.asarray(base)
    if arr.ndim != 3 or arr.shape[1:] != (SIZE, SIZE) or arr.dtype != np.uint8:
        raise InputError(
            f"base must be a (N, 28, 28) uint8 array, got shape {arr.shape} dtype {arr.dtype}"
        )
    return arr


def _select(n: int, seed: int, base: object) -> tuple[np.ndarray, np.random.Generator]:
    """n distinct images drawn from base with the seed, plus the generator."""
    n = check_n(n)
    arr = _check_base(base)
    if n > len(arr):
        raise InputError(f"asked for {n} transformed images but base has only {len(arr)}")
    rng = seeded_rng(seed)
    return arr[rng.choice(len(arr), size=n, replace=False)], rng


def rotate90(n: int, seed: int = 0, *, base: np.ndarray | None = None, **_: object) -> np.ndarray:
    """n MNIST test images (drawn with the seed) rotated 90 degrees counter-clockwise."""
    images, _ = _select(n, seed, base)
    return np.ascontiguousarray(np.rot90(images, k=1, axes=(1, 2)))


def rotate180(n: int, seed: int = 0, *, base: np.ndarray | None = None, **_: object) -> np.ndarray:
    """n MNIST test images (drawn with the seed) turned upside down."""
    images, _ = _select(n, seed, base)
    return np.ascontiguousarray(np.rot90(images, k=2, axes=(1, 2)))


def invert(n: int, seed: int = 0, *, base: np.ndarray | None = None, **_: object) -> np.ndarray:
    """n MNIST test images (drawn with the seed) with inverted intensities (255 - x)."""
    images, _ = _select(n, seed, base)
    return 255 - images


def shift_image(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Move an image by (dy, dx) pixels, filling the uncovered part with zeros."""
    return shift_images(image[None], dx=dx, dy=dy)[0]


def shift(n: int, seed: int = 0, *, base: np.ndarray | None = None, **_: object) -> np.ndarray:
    """n MNIST test images (drawn with the seed), each moved 6-8 px, zero-filled.

    The direction is one of the 8 compass directions, uniformly; the distance
    (6, 7 or 8 px) applies to each axis that moves, so diagonal moves are
    6-8 px both down/up and left/right.
    """
    images, rng = _select(n, seed, base)
    out = np.empty_like(images)
    for i, image in enumerate(images):
        dy, dx = _DIRECTIONS[rng.integers(len(_DIRECTIONS))]
        dist = int(rng.integers(SHIFT_DISTANCES[0], SHIFT_DISTANCES[1] + 1))
        out[i] = shift_image(image, dy * dist, dx * dist)
    return out


# --------------------------------------------------------------------------- registry


OOD_SETS: dict[str, OODSpec] = {
    spec.name: spec
    for spec in (
        OODSpec("gaussian_noise", "i.i.d. N(0.5, 0.25^2) pixels, clipped, x255",
                "far", 2000, gaussian_noise),
        OODSpec("uniform_noise", "i.i.d. uniform 0..255 pixels", "far", 2000, uniform_noise),
        OODSpec("letters", "letters A-J in installed fonts filling the frame (notMNIST-like)",
                "far", 2000, letters),
        OODSpec("letters_mnistified", "the same letters MNIST-ified: 20x20 box, centred by mass",
                "far", 2000, letters_mnistified),
        OODSpec("natural_crops", "random crops of scikit-image's bundled photos, MNIST-ified",
                "far", 2000, natural_crops),
        OODSpec("sklearn_digits", "scikit-learn's 8x8 digits upscaled to 20x20, centred by mass",
                "shift", 1797, sklearn_digits),
        OODSpec("rotate90", "MNIST test images rotated 90 degrees", "transform", 2000, rotate90),
        OODSpec("rotate180", "MNIST test images rotated 180 degrees", "transform", 2000, rotate180),
        OODSpec("invert", "MNIST test images with inverted intensities", "transform", 2000, invert),
        OODSpec("shift", "MNIST test images moved 6-8 px, zero-filled", "transform", 2000, shift),
    )
}


def ood_names(kind: str | None = None) -> list[str]:
    """Names of the registered OOD sets, all or only those of one kind."""
    if kind is not None and kind not in KINDS:
        raise InputError(f"unknown OOD kind {kind!r}; known kinds: {', '.join(KINDS)}")
    return [name for name, spec in OOD_SETS.items() if kind is None or spec.kind == kind]


def make_ood(name: str, n: int | None = None, seed: int = 0,
             base: np.ndarray | None = None) -> np.ndarray:
    """Build the OOD set `name`: a (n, 28, 28) uint8 array.

    n defaults to the set's default_n (for transform sets, capped at the
    number of base images). `base` (MNIST test images) is required by the
    transform sets and ignored by the others.
    """
    spec = OOD_SETS.get(name)
    if spec is None:
        raise InputError(f"unknown OOD set {name!r}; known sets: {', '.join(OOD_SETS)}")
    if spec.kind == "transform":
        arr = _check_base(base)
        count = min(spec.default_n, len(arr)) if n is None else n
        return spec.make(count, seed, base=arr)
    if base is not None:
        log.debug("make_ood(%r): base is not used by this set", name)
    return spec.make(spec.default_n if n is None else n, seed)
