"""Show why ABS decides what it decides: each class generator's best explanation of an input.

Text: per-class loss l_y (a_y l_y with fitted class scales) and a 14 x 14 ASCII thumbnail of
each reconstruction; image: a PNG grid, one row per input (the input, then the ten
reconstructions).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .atomic import atomic_path

RAMP = " .:-=+*#%@"          # dark -> bright


def thumbnail(image: np.ndarray) -> list[str]:
    """A 28 x 28 image in [0, 1] -> 14 lines of 14 characters (2 x 2 average pooling)."""
    small = np.asarray(image, np.float64).reshape(14, 2, 14, 2).mean((1, 3))
    levels = np.clip((small * len(RAMP)).astype(int), 0, len(RAMP) - 1)
    return ["".join(RAMP[v] for v in row) for row in levels]


def explain_text(image: np.ndarray, recs: np.ndarray, losses: np.ndarray, class_names: list[str],
                 per_row: int = 6, symbol: str = "l") -> str:
    """The input and each class's reconstruction as ASCII thumbnails, labelled with its loss
    (`symbol`: "l" for l_y, "al" for a_y l_y when the class scales are fitted); the
    best-explaining class is marked with *."""
    best = int(np.argmin(losses))
    tiles = [("input", thumbnail(image))]
    tiles += [(f"{'*' if c == best else ' '}{class_names[c]} {symbol}={losses[c]:.4f}", thumbnail(recs[c]))
              for c in range(len(recs))]
    lines = []
    for i in range(0, len(tiles), per_row):
        row = tiles[i:i + per_row]
        lines.append("  ".join(f"{label:<14.14}" for label, _ in row))
        lines += ["  ".join(t[r] for _, t in row) for r in range(14)]
        lines.append("")
    return "\n".join(lines).rstrip()


def explain_grid(images: np.ndarray, recs: np.ndarray, scale: int = 2, gap: int = 2) -> np.ndarray:
    """One row per input: the input, then its C reconstructions; images (N, 28, 28) and recs
    (N, C, 28, 28) in [0, 1] -> a uint8 grey image."""
    n, c = recs.shape[:2]
    cell = 28 * scale + gap
    grid = np.full((n * cell + gap, (c + 1) * cell + gap + gap), 96, np.uint8)
    for i in range(n):
        tiles = [images[i], *recs[i]]
        for j, tile in enumerate(tiles):
            left = gap + j * cell + (gap if j else 0)            # a wider gap after the input
            px = np.kron(np.clip(tile, 0, 1), np.ones((scale, scale)))
            grid[gap + i * cell: gap + i * cell + 28 * scale, left:left + 28 * scale] = (255 * px).round()
    return grid


def write_explain_png(path: str | Path, images: np.ndarray, recs: np.ndarray, scale: int = 2,
                      gap: int = 2) -> Path:
    """`explain_grid` as a PNG file, written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(explain_grid(images, recs, scale, gap)).save(tmp, format="PNG")
    return path
