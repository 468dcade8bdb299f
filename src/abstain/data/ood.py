"""Offline out-of-distribution (OOD) image sets for MNIST.

Every set is built by a function ``make(n, seed, **kw)`` that returns ``n``
images as a ``(n, 28, 28)`` uint8 array (bright ink on black, like MNIST),
the same for the same seed. The sets are registered in `OOD_SETS` with a
kind:

* ``"far"``: clearly not digits (noise, letters, photo crops);
* ``"shift"``: digits in another style (covariate shift, reported apart);
* ``"transform"``: transformed MNIST test images, passed as ``base=``.

Nothing here downloads anything: letters come from installed fonts, photos
from scikit-image's bundled images, digits from scikit-learn's bundled set.
FashionMNIST is not here; it is real data loaded elsewhere.
"""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import DataError, InputError
from ..tensors import shift_images
from .mnistify import CANVAS_SIZE, center_by_mass, mnistify

log = logging.getLogger(__name__)

KINDS = ("far", "shift", "transform")
SIZE = CANVAS_SIZE

LETTERS = "ABCDEFGHIJ"
FONT_DIR = Path("/usr/share/fonts")
LETTER_SIZES = (28, 64)  # font size range in px, inclusive
LETTER_MAX_ROTATION = 15.0  # degrees, either way
LETTER_MAX_STROKE = 2  # extra stroke width in px

PHOTO_NAMES = (
    "astronaut", "camera", "coffee", "chelsea", "coins", "moon", "rocket",
    "clock", "immunohistochemistry", "hubble_deep_field", "grass", "gravel",
    "brick", "cell", "cat", "page", "text",
)
CROP_SIDES = (40, 300)  # square crop side range in px, inclusive

SHIFT_DISTANCES = (6, 8)  # px along each moved axis, inclusive
_DIRECTIONS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))
_LUMA = np.array([0.299, 0.587, 0.114])


@dataclass(frozen=True)
class OODSpec:
    """One registered OOD set: ``make(n, seed, **kw)`` builds ``n`` images."""

    name: str
    description: str
    kind: str
    default_n: int
    make: Callable[..., np.ndarray]


# --------------------------------------------------------------------------- helpers


def _check_n(n: object) -> int:
    """Validate a requested number of images."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) or n < 0:
        raise InputError(f"n must be a non-negative integer, got {n!r}")
    return int(n)


def _rng(seed: object) -> np.random.Generator:
    """A numpy Generator for `seed`, with a clear error for a bad seed."""
    try:
        return np.random.default_rng(seed)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}") from exc


def _stack(images: list[np.ndarray]) -> np.ndarray:
    """Stack 28x28 uint8 images, giving (0, 28, 28) for an empty list."""
    if not images:
        return np.zeros((0, SIZE, SIZE), dtype=np.uint8)
    return np.stack(images).astype(np.uint8, copy=False)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    """Map floats in 0..1 to uint8 0..255 (clipping, rounding)."""
    return np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.uint8)


# --------------------------------------------------------------------------- noise


def gaussian_noise(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """Pixels drawn i.i.d. from N(0.5, 0.25^2), clipped to 0..1, scaled to 0..255."""
    n = _check_n(n)
    return _to_uint8(_rng(seed).normal(0.5, 0.25, size=(n, SIZE, SIZE)))


def uniform_noise(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """Pixels drawn i.i.d. uniformly from the integers 0..255."""
    n = _check_n(n)
    return _rng(seed).integers(0, 256, size=(n, SIZE, SIZE), dtype=np.uint8)


# --------------------------------------------------------------------------- letters


@functools.lru_cache(maxsize=1)
def _font_paths() -> tuple[str | None, ...]:
    """TrueType fonts under FONT_DIR that load, DejaVu only if any; (None,) if none.

    None stands for Pillow's built-in default font.
    """
    paths = sorted(FONT_DIR.glob("**/*.ttf")) if FONT_DIR.is_dir() else []
    dejavu = [p for p in paths if "dejavu" in p.name.lower()]
    usable = []
    for path in dejavu or paths:
        try:
            ImageFont.truetype(str(path), 20)
        except OSError:
            log.warning("skipping unreadable font %s", path)
            continue
        usable.append(str(path))
    if not usable:
        log.warning("no TrueType fonts under %s; letters use Pillow's default font", FONT_DIR)
    return tuple(usable) or (None,)


@functools.lru_cache(maxsize=2048)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Load (once) a font at a pixel size; None means Pillow's default font."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


def _render_letter(letter: str, font: ImageFont.ImageFont, size: int,
                   stroke: int, angle: float, style: str = "mnistified") -> np.ndarray:
    """Draw one white letter centred on black, rotate it, then MNIST-ify it
    (``style="mnistified"``) or fit it to the whole 28x28 frame as notMNIST does
    (``style="notmnist"``)."""
    side = 2 * size + 4 * stroke
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=font, stroke_width=stroke)
    xy = ((side - (right - left)) / 2 - left, (side - (bottom - top)) / 2 - top)
    draw.text(xy, letter, fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    rotated = canvas.rotate(angle, resample=Image.Resampling.BILINEAR)
    if style == "notmnist":
        return _fill_frame(rotated)
    return mnistify(np.asarray(rotated), invert=False)


def _fill_frame(glyph: Image.Image) -> np.ndarray:
    """Crop to the ink and scale so the longer side spans the full 28 px (notMNIST's framing)."""
    box = glyph.getbbox()
    if box is not None:
        glyph = glyph.crop(box)
    w, h = glyph.size
    scale = CANVAS_SIZE / max(w, h)
    small = glyph.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    canvas = Image.new("L", (CANVAS_SIZE, CANVAS_SIZE), 0)
    canvas.paste(small, ((CANVAS_SIZE - small.size[0]) // 2, (CANVAS_SIZE - small.size[1]) // 2))
    arr = np.asarray(canvas, dtype=np.float32)
    return np.clip(arr * (255.0 / max(arr.max(), 1.0)), 0, 255).astype(np.uint8)


def letters(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """notMNIST-like letters A-J: glyphs in random installed fonts filling the 28x28 frame,
    as in Bulatov's notMNIST (2011). See `letters_mnistified` for the harder variant."""
    return _letters(n, seed, "notmnist")


def letters_mnistified(n: int, seed: int = 0, **_: object) -> np.ndarray:
    """The same letters put through `mnistify` (20x20 box, centred by mass, like a digit)."""
    return _letters(n, seed, "mnistified")


def _letters(n: int, seed: int, style: str) -> np.ndarray:
    """Letters A-J in random installed fonts.

    Each image has a random letter, font, size (28-64 px), stroke weight
    (0-2 px extra) and rotation (+-15 degrees).
    """
    n = _check_n(n)
    rng = _rng(seed)
    fonts = _font_paths()
    images = []
    for _i in range(n):
        letter = LETTERS[rng.integers(len(LETTERS))]
        path = fonts[rng.integers(len(fonts))]
        size = int(rng.integers(LETTER_SIZES[0], LETTER_SIZES[1] + 1))
        stroke = int(rng.integers(0, LETTER_MAX_STROKE + 1))
        angle = float(rng.uniform(-LETTER_MAX_ROTATION, LETTER_MAX_ROTATION))
        images.append(_render_letter(letter, _font(path, size), size, stroke, angle, style))
    return _stack(images)


# --------------------------------------------------------------------------- photos


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
    n = _check_n(n)
    rng = _rng(seed)
    photos = _photos()
    images = []
    for _i in range(n):
        for _try in range(10):
            crop = _random_crop(photos[rng.integers(len(photos))], rng)
            if crop.max() > crop.min():
                break
        images.append(mnistify(crop))
    return _stack(images)


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


# --------------------------------------------------------------------------- sklearn digits


def _digit_to_mnist(digit: np.ndarray) -> np.ndarray:
    """One 8x8 scikit-learn digit (0..16) to 28x28 uint8: 20x20 bilinear, centred by mass."""
    small = Image.fromarray((digit / 16.0).astype(np.float32))
    big = np.asarray(small.resize((20, 20), Image.Resampling.BILINEAR), dtype=np.float64)
    return _to_uint8(center_by_mass(np.clip(big, 0.0, 1.0)))


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
    return np.sort(_rng(seed).choice(total, size=n, replace=False))


def sklearn_digits(n: int = 1797, seed: int = 0, **_: object) -> np.ndarray:
    """scikit-learn's 8x8 digits upscaled to 20x20 and centred by mass in 28x28.

    There are only 1797 images: a larger n is capped at 1797 (so the result
    may have fewer than n rows) rather than repeating images. With n >= 1797
    all images are returned in their original order and the seed is unused;
    otherwise n distinct images are drawn with the seed, in original order.
    Labels for the same (n, seed) come from `sklearn_digits_labels`.
    """
    images, _labels = _sklearn_digits_all()
    return images[_sklearn_indices(_check_n(n), seed, len(images))].copy()


def sklearn_digits_labels(n: int = 1797, seed: int = 0) -> np.ndarray:
    """int64 labels 0..9 matching ``sklearn_digits(n, seed)`` row for row."""
    _images, labels = _sklearn_digits_all()
    return labels[_sklearn_indices(_check_n(n), seed, len(labels))].copy()


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
    n = _check_n(n)
    arr = _check_base(base)
    if n > len(arr):
        raise InputError(f"asked for {n} transformed images but base has only {len(arr)}")
    rng = _rng(seed)
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
