"""The letters OOD sets: A-J in installed fonts, notMNIST-like (filling the frame) or
MNIST-ified (20x20 box, centred by mass, like a digit)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .fonts import font, font_paths
from .mnistify import CANVAS_SIZE, mnistify
from .set_helpers import check_n, seeded_rng, stack_images

LETTERS = "ABCDEFGHIJ"
LETTER_SIZES = (28, 64)  # font size range in px, inclusive
LETTER_MAX_ROTATION = 15.0  # degrees, either way
LETTER_MAX_STROKE = 2  # extra stroke width in px


def _render_letter(letter: str, face: ImageFont.ImageFont, size: int,
                   stroke: int, angle: float, style: str = "mnistified") -> np.ndarray:
    """Draw one white letter centred on black, rotate it, then MNIST-ify it
    (``style="mnistified"``) or fit it to the whole 28x28 frame as notMNIST does
    (``style="notmnist"``)."""
    side = 2 * size + 4 * stroke
    canvas = Image.new("L", (side, side), 0)
    draw = ImageDraw.Draw(canvas)
    left, top, right, bottom = draw.textbbox((0, 0), letter, font=face, stroke_width=stroke)
    xy = ((side - (right - left)) / 2 - left, (side - (bottom - top)) / 2 - top)
    draw.text(xy, letter, fill=255, font=face, stroke_width=stroke, stroke_fill=255)
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
    n = check_n(n)
    rng = seeded_rng(seed)
    fonts = font_paths()
    images = []
    for _i in range(n):
        letter = LETTERS[rng.integers(len(LETTERS))]
        path = fonts[rng.integers(len(fonts))]
        size = int(rng.integers(LETTER_SIZES[0], LETTER_SIZES[1] + 1))
        stroke = int(rng.integers(0, LETTER_MAX_STROKE + 1))
        angle = float(rng.uniform(-LETTER_MAX_ROTATION, LETTER_MAX_ROTATION))
        images.append(_render_letter(letter, font(path, size), size, stroke, angle, style))
    return stack_images(images)
