"""Figures for the HTML report: every function returns the PNG bytes of one figure.

Matplotlib runs with the Agg backend (no display needed) and every figure is closed once it is
saved, so building many reports in one process does not leak memory.
"""
from __future__ import annotations

import io
import logging

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from PIL import Image  # noqa: E402

from ..metrics import roc  # noqa: E402

log = logging.getLogger(__name__)

DPI = 90
IN_COLOUR = "#1f77b4"      # blue: in-distribution
OOD_COLOUR = "#e377c2"     # pink: out-of-distribution
THRESHOLD_COLOUR = "#d62728"
STRIP_MAX_COLUMNS = 1200   # sorted strips are binned down to at most this many columns


def _png(fig) -> bytes:
    """Save a figure as PNG bytes and close it."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    finally:
        plt.close(fig)
    return buf.getvalue()


def image_png(image: np.ndarray, scale: int = 6) -> bytes:
    """One (28, 28) uint8 image, enlarged `scale` times with nearest-neighbour pixels."""
    img = Image.fromarray(np.asarray(image, dtype=np.uint8), mode="L")
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def softmax_bars(probs: np.ndarray, class_names: list[str]) -> bytes:
    """The seed's 'expected vs actual softmax': uniform 1/C next to the classifier's output."""
    probs = np.asarray(probs, dtype=np.float64)
    x = np.arange(len(probs))
    expected = np.full(len(probs), 1.0 / len(probs))
    fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
    for ax, values, title, colour in ((axes[0], expected, "expected", "#7f7f7f"),
                                      (axes[1], probs, "actual", OOD_COLOUR)):
        ax.bar(x, values, color=colour)
        ax.set_title(f"{title} softmax")
        ax.set_xticks(x)
        ax.set_xticklabels(class_names, rotation=45 if max(map(len, class_names)) > 2 else 0,
                           fontsize=8, ha="right" if max(map(len, class_names)) > 2 else "center")
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("class")
    axes[0].set_ylabel("probability")
    fig.tight_layout()
    return _png(fig)


def _strip_colours(is_ood: np.ndarray) -> np.ndarray:
    """RGB row for a sorted strip: one column per image, or binned means when there are many."""
    blue = np.array(to_rgb(IN_COLOUR))
    pink = np.array(to_rgb(OOD_COLOUR))
    share = is_ood.astype(np.float64)
    if len(share) > STRIP_MAX_COLUMNS:
        edges = np.linspace(0, len(share), STRIP_MAX_COLUMNS + 1).astype(int)
        share = np.add.reduceat(share, edges[:-1]) / np.diff(edges)
    return (1 - share)[:, None] * blue + share[:, None] * pink


def sorted_strips(strips: list[tuple[str, np.ndarray, np.ndarray]], in_name: str,
                  ood_name: str) -> bytes:
    """The seed's sorted strip, one per detector: images sorted by score, coloured by set.

    `strips` holds (title, in-distribution scores, OOD scores). Each image is one vertical
    line, blue for in-distribution and pink for OOD, ordered by increasing score; ideally
    all pink lines sit on the left.
    """
    fig, axes = plt.subplots(len(strips), 1, figsize=(12, 0.9 + 0.75 * len(strips)), squeeze=False,
                             sharex=True)
    for ax, (title, s_in, s_out) in zip(axes[:, 0], strips):
        scores = np.r_[np.asarray(s_in, np.float64), np.asarray(s_out, np.float64)]
        is_ood = np.r_[np.zeros(len(s_in), bool), np.ones(len(s_out), bool)]
        order = np.argsort(scores, kind="stable")
        row = _strip_colours(is_ood[order])
        ax.imshow(row[None], aspect="auto", interpolation="nearest", extent=(0, len(scores), 0, 1))
        ax.set_yticks([])
        ax.set_ylabel(title, rotation=0, ha="right", va="center", fontsize=9)
        ax.set_xlim(0, len(scores))
        ax.tick_params(labelbottom=False)
    axes[-1, 0].tick_params(labelbottom=True)
    axes[-1, 0].set_xlabel("rank by increasing score (lowest = least in-distribution)")
    handles = [Patch(color=IN_COLOUR, label=in_name),
               Patch(color=OOD_COLOUR, label=ood_name)]
    axes[0, 0].legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.02), ncol=2,
                      frameon=False, fontsize=9)
    return _png(fig)


def _grid(n: int, ncols: int, cell: tuple[float, float]):
    """A figure with n axes in rows of ncols (extra axes hidden)."""
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(cell[0] * ncols, cell[1] * nrows), squeeze=False)
    flat = axes.ravel()
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def roc_panels(pairs: list[tuple[str, dict[str, np.ndarray], dict[str, np.ndarray]]],
               highlight: str) -> bytes:
    """One ROC panel per failure source (name, in-distribution scores, failure scores), one curve
    per detector; the guard's detector drawn thicker."""
    pairs = [(n, a, b) for n, a, b in pairs if all(len(v) for v in b.values())]
    fig, axes = _grid(len(pairs), 4, (3.2, 3.0))
    for ax, (name, scores_in, scores) in zip(axes, pairs):
        for det, s_in in scores_in.items():
            fpr, tpr = roc(s_in, scores[det])
            ax.plot(fpr, tpr, lw=2.4 if det == highlight else 1.1, label=det)
        ax.axhline(0.95, color="#999999", ls=":", lw=1)
        ax.plot([0, 1], [0, 1], color="#cccccc", lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("failures accepted (FPR)", fontsize=8)
        ax.set_ylabel("in-distribution accepted (TPR)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return _png(fig)


def _bins(a: np.ndarray, b: np.ndarray, n: int = 60) -> np.ndarray:
    """Shared histogram bins covering the central 99.8% of both samples."""
    both = np.r_[a, b]
    lo, hi = np.percentile(both, [0.1, 99.9])
    if not hi > lo:
        lo, hi = float(both.min()) - 0.5, float(both.max()) + 0.5
    return np.linspace(lo, hi, n + 1)


def score_histograms(detector: str, test_scores: np.ndarray,
                     oods: list[tuple[str, np.ndarray]], threshold: float) -> bytes:
    """Density histograms of one detector: test vs each OOD set, with the guard's threshold.

    Scores outside the central 99.8% are clipped into the outermost bins.
    """
    fig, axes = _grid(len(oods), 3, (3.6, 2.8))
    test_scores = np.asarray(test_scores, np.float64)
    for ax, (name, s_out) in zip(axes, oods):
        s_out = np.asarray(s_out, np.float64)
        bins = _bins(test_scores, s_out)
        for values, label, colour in ((test_scores, "test", IN_COLOUR), (s_out, name, OOD_COLOUR)):
            ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, density=True, alpha=0.55,
                    color=colour, label=label)
        if bins[0] <= threshold <= bins[-1]:
            ax.axvline(threshold, color=THRESHOLD_COLOUR, lw=1.5, label="threshold")
        else:
            ax.annotate(f"threshold {threshold:.4g} (off scale)", (0.02, 0.92),
                        xycoords="axes fraction", fontsize=7, color=THRESHOLD_COLOUR)
        ax.set_title(f"{detector}: test vs {name}", fontsize=9)
        ax.set_xlabel("score (higher = more in-distribution)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def image_grid(images: np.ndarray, titles: list[str], colours: list[str] | None = None,
               ncols: int = 8) -> bytes:
    """Small images in a grid, each with a small title (e.g. predicted class and confidence)."""
    lines = max(t.count("\n") + 1 for t in titles)
    fig, axes = _grid(len(images), ncols, (1.25, 1.3 + 0.15 * lines))
    colours = colours or ["black"] * len(images)
    for ax, image, title, colour in zip(axes, images, titles, colours):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(title, fontsize=7, color=colour, pad=2)
        ax.axis("off")
    fig.tight_layout(pad=0.3, h_pad=0.4 + 0.5 * lines)
    return _png(fig)


def reconstruction_pairs(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> bytes:
    """Original (top) above the VAE's reconstruction (bottom), one column per image.

    `pairs` holds (caption, original uint8 (28, 28), reconstruction float (28, 28) in [0, 1]).
    """
    fig, axes = plt.subplots(2, len(pairs), figsize=(1.9 * len(pairs), 4.0), squeeze=False)
    for j, (caption, original, recon) in enumerate(pairs):
        axes[0, j].imshow(original, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        axes[1, j].imshow(recon, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axes[0, j].set_title(caption, fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("original", fontsize=9)
    axes[1, 0].set_ylabel("reconstruction", fontsize=9)
    fig.tight_layout()
    return _png(fig)
