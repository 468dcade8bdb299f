"""Tests for abstain.data.mnistify."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from scipy import ndimage

from abstain.data.mnistify import load_image, mnistify
from abstain.errors import InputError


def draw_zero(width: int = 120, height: int = 200, *,
              ink: int = 0, paper: int = 255) -> Image.Image:
    """A digit-like '0': an ellipse outline drawn with ink on paper."""
    img = Image.new("L", (width, height), paper)
    draw = ImageDraw.Draw(img)
    draw.ellipse((width // 6, height // 7, width - width // 6, height - height // 7),
                 outline=ink, width=max(2, width // 10))
    return img


def bbox(image: np.ndarray) -> tuple[int, int]:
    """Height and width of the bounding box of the non-zero pixels."""
    rows = np.flatnonzero(image.any(axis=1))
    cols = np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1


def test_black_on_white_digit_becomes_mnist_style() -> None:
    out = mnistify(draw_zero())
    assert out.shape == (28, 28) and out.dtype == np.uint8
    assert out.max() == 255
    border = np.concatenate([out[0], out[-1], out[:, 0], out[:, -1]])
    assert border.max() == 0, "background must be black"
    cy, cx = ndimage.center_of_mass(out.astype(float))
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
    h, w = bbox(out)
    assert 19 <= max(h, w) <= 20
    assert w < h, "aspect ratio of the tall ellipse is kept"


def test_wide_shape_fits_twenty_pixels_wide() -> None:
    out = mnistify(draw_zero(300, 90))
    h, w = bbox(out)
    assert 19 <= w <= 20 and h < w


@pytest.mark.parametrize("paper, ink", [(255, 0), (0, 255)])
def test_polarity_detected_both_ways(paper: int, ink: int) -> None:
    out = mnistify(draw_zero(ink=ink, paper=paper))
    assert out[0, 0] == 0 and out.max() == 255
    reference = mnistify(draw_zero(ink=0, paper=255))
    assert np.array_equal(out, reference)


def test_explicit_invert_overrides_detection() -> None:
    white_on_black = np.asarray(draw_zero(ink=255, paper=0))
    forced = mnistify(white_on_black, invert=True)
    kept = mnistify(white_on_black)
    # forced inversion turns the paper into ink
    assert forced.astype(int).sum() > 2 * kept.astype(int).sum()
    assert np.array_equal(mnistify(white_on_black, invert=False), kept)


def test_accepts_bool_float_rgb_rgba_pil_and_path(tmp_path: Path) -> None:
    gray = np.asarray(draw_zero())
    reference = mnistify(gray)
    rgb = np.repeat(gray[..., None], 3, axis=2)
    rgba = np.zeros(gray.shape + (4,), dtype=np.uint8)
    rgba[..., 3] = 255 - gray  # black ink where opaque, transparent elsewhere
    path = tmp_path / "zero.png"
    draw_zero().save(path)
    for image in (gray < 128, gray / 255.0, rgb, rgba, Image.fromarray(rgb), path, str(path)):
        out = mnistify(image)
        assert out.shape == (28, 28) and out.dtype == np.uint8
        assert np.abs(out.astype(int) - reference).mean() < 10


@pytest.mark.parametrize("shape", [(3, 5), (7, 1), (1, 1), (1000, 40), (28, 28)])
def test_any_size(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(0)
    out = mnistify(rng.integers(0, 256, size=shape, dtype=np.uint8))
    assert out.shape == (28, 28) and out.dtype == np.uint8


def test_constant_image_gives_black_canvas() -> None:
    assert not mnistify(np.full((40, 40), 200, dtype=np.uint8)).any()


def test_load_image_modes(tmp_path: Path) -> None:
    Image.new("RGBA", (9, 7), (0, 0, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (9, 7)).save(tmp_path / "b.jpg")
    Image.new("L", (9, 7)).save(tmp_path / "c.png")
    assert load_image(tmp_path / "a.png").shape == (7, 9, 4)
    assert load_image(tmp_path / "b.jpg").shape == (7, 9, 3)
    assert load_image(tmp_path / "c.png").shape == (7, 9)


@pytest.mark.parametrize(
    "image, message",
    [
        (np.full((10, 10), np.nan), "NaN"),
        (np.array([[0.0, np.inf], [0.0, 1.0]]), "NaN or infinite"),
        (np.zeros((2, 10, 10, 3)), "dims"),
        (np.zeros(10), "dims"),
        (np.zeros((0, 10)), "empty"),
        (np.zeros((10, 10, 2)), "channels"),
        (np.zeros((3, 3), dtype=object), "dtype"),
        ([[0, 1], [1, 0]], "numpy array"),
    ],
)
def test_bad_arrays_raise_input_error(image: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        mnistify(image)


def test_corrupt_file_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    path.write_bytes(b"\x89PNG this is not really an image \x00\x01\x02" * 10)
    with pytest.raises(InputError, match="cannot read image file"):
        mnistify(path)


def test_truncated_file_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "t.png"
    draw_zero().save(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(InputError, match="cannot read image file"):
        mnistify(path)


def test_missing_file_raises_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        mnistify(tmp_path / "nope.png")


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    # `abstain check DIR` once said "image file not found: DIR" of a folder that exists
    with pytest.raises(InputError, match="is a directory; pass image files"):
        mnistify(tmp_path)


def test_input_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        mnistify(np.zeros((1, 2, 3, 4)))


def test_bad_invert_argument() -> None:
    with pytest.raises(InputError, match="invert"):
        mnistify(np.zeros((5, 5)), invert="yes")  # type: ignore[arg-type]
