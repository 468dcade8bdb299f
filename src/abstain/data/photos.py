"""OOD images from scikit-image's bundled photos: random MNIST-ified crops, and the MNIST-ified
horse that stands in for the seed's chicken. Nothing is downloaded: photos that need a
download, or fail to load, are skipped."""
from __future__ import annotations

import functools
import logging

import numpy as np

from ..errors import DataError
from .mnistify import mnistify
from .set_helpers import check_n, seeded_rng, stack_images

log = logging.getLogger(__name__)

PHOTO_NAMES = (
    "astronaut", "camera", "coffee", "chelsea", "coins", "moon", "rocket",
    "clock", "immunohistochemistry", "hubble_deep_field", "grass", "gravel",
    "brick", "cell", "cat", "page", "text",
)
CROP_SIDES = (40, 300)  # square crop side range in px, inclusive
_LUMA = np.array([0.299, 0.587, 0.114])


def _to_gray_uint8(image: np.ndarray) -> np.ndarray:
    """Luminance of an RGB(A) or gray uint8 image, as uint8."""
    if image.ndim == 2:
        return image.astype(np.uint8, copy=False)
    return np.round(image[..., :3] @ _LUMA).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _photo(name: str) -> np.ndarray | None:
    """A bundled scikit-image photo as gray uint8, or None if it will not load."""
    import skimage.data

    try:
        image = getattr(skimage.data, name)()
    except Exception as exc:  # noqa: BLE001 - any failure just drops the photo
        log.warning("skipping scikit-image photo %r: %s", name, exc)
        return None
    gray = _to_gray_uint8(np.asarray(image))
    gray.setflags(write=False)
    return gray


def _photos() -> list[np.ndarray]:
    """All bundled photos that load; DataError if none does."""
    photos = [p for p in map(_photo, PHOTO_NAMES) if p is not None]
    if not photos:
        raise DataError("none of scikit-image's bundled photos could be loaded")
    return photos


def _random_crop(photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random square crop of side 40..300 px (capped at the photo's size)."""
    h, w = photo.shape
    side = min(int(rng.integers(CROP_SIDES[0], CROP_SIDES[1] + 1)), h, w)
    top = int(rng.integers(0, h - side + 1))
    left = int(rng.integers(0, w - side + 1))
    return photo[top:top + side, left:left + side]


def natural_crops(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """Random square crops of scikit-image's bundled photos, MNIST-ified.

    Polarity is decided automatically by `mnistify`. A flat crop (one grey
    level) is redrawn, up to 10 times, so that images are not blank.
    """
    n = check_n(n)
    rng = seeded_rng(seed)
    photos = _photos()
    images = []
    for _i in range(n):
        for _try in range(10):
            crop = _random_crop(photos[rng.integers(len(photos))], rng)
            if crop.max() > crop.min():
                break
        images.append(mnistify(crop))
    return stack_images(images)


@functools.lru_cache(maxsize=1)
def _chicken() -> np.ndarray:
    """The MNIST-ified `horse` silhouette, computed once and made read-only."""
    import skimage.data

    image = mnistify(skimage.data.horse())
    image.setflags(write=False)
    return image


def chicken_image() -> np.ndarray:
    """A 28x28 MNIST-ified picture of an animal, standing in for the seed's chicken.

    The seed shows an MNIST classifier a cut-out photo of a chicken; no chicken picture is
    bundled offline, so scikit-image's `horse` silhouette plays its part (a photo crop such
    as `chelsea` MNIST-ifies to a grey textured square that no longer reads as an animal).
    Returns a fresh (28, 28) uint8 array.
    """
    return _chicken().copy()
