"""Tests for abstain.data.ood."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from abstain.data import fonts, ood, photos
from abstain.errors import InputError

N = 40


@pytest.fixture(scope="module")
def base() -> np.ndarray:
    """Stand-in MNIST test images: random blobs on black, (300, 28, 28) uint8."""
    rng = np.random.default_rng(123)
    images = np.zeros((300, 28, 28), dtype=np.uint8)
    images[:, 6:22, 8:20] = rng.integers(0, 256, size=(300, 16, 12), dtype=np.uint8)
    return images


def build(name: str, n: int, seed: int, base: np.ndarray) -> np.ndarray:
    return ood.make_ood(name, n=n, seed=seed, base=base)


@pytest.mark.parametrize("name", list(ood.OOD_SETS))
def test_every_set_shape_dtype_not_constant(name: str, base: np.ndarray) -> None:
    images = build(name, N, 0, base)
    assert images.shape == (N, 28, 28)
    assert images.dtype == np.uint8
    assert images.std() > 0
    assert all(img.max() > img.min() for img in images), "no image is blank"


@pytest.mark.parametrize("name", list(ood.OOD_SETS))
def test_deterministic_per_seed_and_varies_across_seeds(name: str, base: np.ndarray) -> None:
    first = build(name, N, 7, base)
    assert np.array_equal(first, build(name, N, 7, base))
    assert not np.array_equal(first, build(name, N, 8, base))


@pytest.mark.parametrize("name", list(ood.OOD_SETS))
def test_spec_is_consistent(name: str) -> None:
    spec = ood.OOD_SETS[name]
    assert spec.name == name
    assert spec.kind in ood.KINDS
    assert spec.default_n > 0 and spec.description


def test_spec_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ood.OOD_SETS["letters"].default_n = 3  # type: ignore[misc]


def test_default_sizes(base: np.ndarray) -> None:
    assert ood.make_ood("uniform_noise").shape == (2000, 28, 28)
    assert ood.make_ood("sklearn_digits").shape == (1797, 28, 28)
    assert ood.make_ood("rotate90", base=base).shape == (len(base), 28, 28)


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(InputError, match="unknown OOD set") as info:
        ood.make_ood("not_a_set")
    for name in ood.OOD_SETS:
        assert name in str(info.value)


def test_ood_names_by_kind() -> None:
    assert set(ood.ood_names()) == set(ood.OOD_SETS)
    by_kind = [ood.ood_names(kind) for kind in ood.KINDS]
    assert sorted(sum(by_kind, [])) == sorted(ood.OOD_SETS)
    assert ood.ood_names("shift") == ["sklearn_digits"]
    assert "fashion_mnist" not in ood.OOD_SETS
    with pytest.raises(InputError, match="kind"):
        ood.ood_names("near")


def test_letters_look_unlike_noise() -> None:
    letters = ood.letters(200, seed=0)
    assert (letters == 0).mean() > 0.3                 # glyphs fill the frame, as in notMNIST
    assert (ood.letters_mnistified(200, seed=0) == 0).mean() > 0.5
    # notMNIST framing: the ink spans (nearly) the whole 28 px in one direction
    rows, cols = (letters > 0).any(2).sum(1), (letters > 0).any(1).sum(1)
    assert np.median(np.maximum(rows, cols)) >= 27
    assert (ood.uniform_noise(200, seed=0) == 0).mean() < 0.05
    assert (ood.gaussian_noise(200, seed=0) == 0).mean() < 0.05
    assert (letters.max(axis=(1, 2)) == 255).all()


def test_letters_fall_back_to_default_font(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "FONT_DIR", tmp_path)
    fonts.font_paths.cache_clear()
    try:
        images = ood.letters(10, seed=0)
    finally:
        fonts.font_paths.cache_clear()
    assert images.shape == (10, 28, 28) and (images == 0).mean() > 0.5


def test_natural_crops_skip_photos_that_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(photos, "PHOTO_NAMES", ("no_such_photo", "camera"))
    images = ood.natural_crops(5, seed=0)
    assert images.shape == (5, 28, 28)


def test_gaussian_noise_statistics() -> None:
    pixels = ood.gaussian_noise(500, seed=1).astype(float) / 255
    assert abs(pixels.mean() - 0.5) < 0.01
    assert 0.2 < pixels.std() < 0.26  # 0.25 before clipping


def test_sklearn_digits_labels_match_and_cap() -> None:
    images = ood.sklearn_digits(5000)
    labels = ood.sklearn_digits_labels(5000)
    assert images.shape == (1797, 28, 28) and labels.shape == (1797,)
    assert set(labels.tolist()) == set(range(10))
    sub = ood.sklearn_digits(30, seed=3)
    sub_labels = ood.sklearn_digits_labels(30, seed=3)
    rows = [int(np.flatnonzero((images == img).all(axis=(1, 2)))[0]) for img in sub]
    assert np.array_equal(labels[rows], sub_labels)


def test_sklearn_digits_are_mnist_like() -> None:
    images = ood.sklearn_digits().astype(float)
    assert images[:, 0, :].max() == 0 and images[:, :, 0].max() == 0
    ys, xs = np.indices((28, 28))
    mass = images.sum(axis=(1, 2))
    cy = (images * ys).sum(axis=(1, 2)) / mass
    cx = (images * xs).sum(axis=(1, 2)) / mass
    assert np.all(np.abs(cy - 14) <= 1) and np.all(np.abs(cx - 14) <= 1)


def test_transforms_are_what_they_say(base: np.ndarray) -> None:
    same = np.repeat(base[:1], 50, axis=0)
    assert np.array_equal(ood.rotate90(5, 0, base=same)[0], np.rot90(base[0]))
    assert np.array_equal(ood.rotate180(5, 0, base=same)[0], base[0, ::-1, ::-1])
    assert np.array_equal(ood.invert(5, 0, base=same)[0], 255 - base[0])


def test_shift_moves_six_to_eight_pixels() -> None:
    dot = np.zeros((100, 28, 28), dtype=np.uint8)
    dot[:, 14, 14] = 255
    shifted = ood.shift(100, seed=0, base=dot)
    for image in shifted:
        (y,), (x,) = np.nonzero(image)
        dy, dx = abs(int(y) - 14), abs(int(x) - 14)
        assert (dy, dx) != (0, 0)
        assert dy in (0, 6, 7, 8) and dx in (0, 6, 7, 8)


def test_shift_image_zero_fills() -> None:
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    moved = ood.shift_image(image, 1, -2)
    assert np.array_equal(moved[1:, :2], image[:3, 2:])
    assert not moved[0].any() and not moved[:, 2:].any()
    assert not ood.shift_image(image, 9, 0).any()


@pytest.mark.parametrize("name", ood.ood_names("transform"))
def test_transforms_need_valid_base(name: str, base: np.ndarray) -> None:
    with pytest.raises(InputError, match="base"):
        ood.make_ood(name)
    with pytest.raises(InputError, match="base"):
        ood.OOD_SETS[name].make(5, 0)
    with pytest.raises(InputError, match="base"):
        ood.make_ood(name, base=base.astype(np.float32))
    with pytest.raises(InputError, match="only"):
        ood.make_ood(name, n=len(base) + 1, base=base)


def test_bad_n_and_seed() -> None:
    assert ood.make_ood("letters", n=0).shape == (0, 28, 28)
    with pytest.raises(InputError, match="n must"):
        ood.make_ood("uniform_noise", n=-1)
    with pytest.raises(InputError, match="n must"):
        ood.make_ood("uniform_noise", n=2.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="seed"):
        ood.make_ood("uniform_noise", n=3, seed=-1)


def test_chicken_image() -> None:
    chicken = ood.chicken_image()
    assert chicken.shape == (28, 28) and chicken.dtype == np.uint8
    assert chicken.max() == 255 and chicken.std() > 0
    chicken[:] = 0
    assert ood.chicken_image().any(), "callers get a copy"
