"""Installed TrueType fonts (for the letters OOD set and the shape probes): DejaVu where
present, else any TrueType font, else Pillow's built-in default."""
from __future__ import annotations

import functools
import logging
from pathlib import Path

from PIL import ImageFont

log = logging.getLogger(__name__)

FONT_DIR = Path("/usr/share/fonts")


@functools.lru_cache(maxsize=1)
def font_paths() -> tuple[str | None, ...]:
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
def font(path: str | None, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Load (once) a font at a pixel size; None means Pillow's default font."""
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)
