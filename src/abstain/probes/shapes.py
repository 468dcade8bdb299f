"""Shapes that are not digits (and a few that are): bars, crosses, boxes, circles, letters.

Every image is uint8 (28, 28) with bright ink on black, like MNIST. Shapes are drawn with
anti-aliased strokes about 2.5 px wide (MNIST's typical pen) by drawing at 4x and averaging
down. Coordinates are in pixels of the 28 x 28 frame, (x, y) with y pointing down; shapes sit
in the central 20 x 20 box where MNIST puts its digits. Letters are rendered in an installed
font (DejaVu Sans when present) and put through `mnistify`, so they are framed like digits.
Nothing here is random: the same call gives the same pixels.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from ..data.mnistify import mnistify
from ..data.fonts import font, font_paths

SUPER = 4                 # supersampling factor
STROKE = 2.5              # pen width in pixels of the 28 x 28 frame
LETTERS = "ABEHKMRSXZ"

Line = tuple[float, float, float, float]


def _canvas() -> tuple[Image.Image, ImageDraw.ImageDraw]:
    img = Image.new("L", (28 * SUPER, 28 * SUPER), 0)
    return img, ImageDraw.Draw(img)


def _s(*coords: float) -> list[float]:
    return [c * SUPER for c in coords]


def _down(img: Image.Image) -> np.ndarray:
    return np.asarray(img.resize((28, 28), Image.Resampling.BOX), dtype=np.uint8)


def draw_lines(lines: list[Line], width: float = STROKE) -> np.ndarray:
    """Straight strokes (x0, y0, x1, y1) with round ends -> uint8 (28, 28)."""
    img, d = _canvas()
    w = width * SUPER
    for x0, y0, x1, y1 in lines:
        d.line(_s(x0, y0, x1, y1), fill=255, width=round(w))
        for x, y in ((x0, y0), (x1, y1)):                      # round caps
            d.ellipse(_s(x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=255)
    return _down(img)


def _outline(kind: str, box: tuple[float, float, float, float], filled: bool = False) -> np.ndarray:
    img, d = _canvas()
    width = 0 if filled else round(STROKE * SUPER)
    draw = d.ellipse if kind == "ellipse" else d.rectangle
    draw(_s(*box), outline=255, fill=255 if filled else None, width=width)
    return _down(img)


def _polygon(points: list[tuple[float, float]]) -> np.ndarray:
    closed = points + points[:1]
    return draw_lines([(*a, *b) for a, b in zip(closed, closed[1:])])


def letter(ch: str) -> np.ndarray:
    """One capital letter in DejaVu Sans (or the first installed font), MNIST-ified."""
    paths = font_paths()
    path = next((p for p in paths if p and p.endswith("DejaVuSans.ttf")), paths[0])
    img = Image.new("L", (160, 160), 0)
    d = ImageDraw.Draw(img)
    face = font(path, 96)
    left, top, right, bottom = d.textbbox((0, 0), ch, font=face)
    d.text(((160 - (right - left)) / 2 - left, (160 - (bottom - top)) / 2 - top), ch, fill=255, font=face)
    return mnistify(np.asarray(img), invert=False)


def _geometric() -> dict[str, np.ndarray]:
    h, v = (6, 14, 22, 14), (14, 4, 14, 24)
    d1, d2 = (7, 23, 21, 5), (7, 5, 21, 23)
    return {
        "horizontal bar": draw_lines([h]),
        "vertical bar": draw_lines([v]),
        "diagonal /": draw_lines([d1]),
        "diagonal \\": draw_lines([d2]),
        "plus": draw_lines([h, v]),
        "x cross": draw_lines([d1, d2]),
        "two bars =": draw_lines([(6, 11, 22, 11), (6, 18, 22, 18)]),
        "three bars": draw_lines([(6, 7, 22, 7), (6, 14, 22, 14), (6, 21, 22, 21)]),
        "hash #": draw_lines([(6, 10, 22, 10), (6, 18, 22, 18), (10, 5, 10, 23), (18, 5, 18, 23)]),
        "L corner": draw_lines([(9, 5, 9, 22), (9, 22, 20, 22)]),
        "T shape": draw_lines([(6, 6, 22, 6), (14, 6, 14, 23)]),
        "square": _outline("rectangle", (6, 6, 22, 22)),
        "filled square": _outline("rectangle", (9, 9, 19, 19), filled=True),
        "circle": _outline("ellipse", (5, 5, 23, 23)),
        "disc": _outline("ellipse", (8, 8, 20, 20), filled=True),
        "small dot": _outline("ellipse", (12, 12, 16, 16), filled=True),
        "triangle": _polygon([(14, 5), (22, 22), (6, 22)]),
        "zigzag": draw_lines([(5, 20, 10, 8), (10, 8, 14, 20), (14, 20, 18, 8), (18, 8, 23, 20)]),
    }


def make_shapes() -> tuple[list[str], np.ndarray]:
    """(names, uint8 images (N, 28, 28)): the geometric shapes, then the letters of LETTERS."""
    shapes = _geometric()
    shapes.update({f"letter {ch}": letter(ch) for ch in LETTERS})
    return list(shapes), np.stack(list(shapes.values()))
