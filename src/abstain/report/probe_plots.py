"""Figures of the probes section: every function returns the PNG bytes of one figure."""
from __future__ import annotations

import numpy as np

from .plots import THRESHOLD_COLOUR, _grid, _png, plt

ACC_COLOUR = "#222222"
CONF_COLOUR = "#ff7f0e"
ABSTAIN_COLOUR = THRESHOLD_COLOUR


def _series(sweep: dict, key: str) -> np.ndarray:
    return np.array([s[key] for s in sweep["steps"]], np.float64)


def _values(sweep: dict) -> np.ndarray:
    return np.array([s["value"] for s in sweep["steps"]], np.float64)


def sweep_panels(sweeps: dict) -> bytes:
    """One panel per sweep: accuracy, mean max-softmax and the guard's abstention rate against
    the size of the change; the shaded area is confidence above accuracy (overconfidence)."""
    fig, axes = _grid(len(sweeps), 4, (3.4, 2.9))
    for ax, (name, sw) in zip(axes, sweeps.items()):
        x, acc, conf = _values(sw), _series(sw, "accuracy"), _series(sw, "confidence")
        ax.fill_between(x, acc, conf, where=conf >= acc, color=CONF_COLOUR, alpha=0.15, lw=0)
        ax.plot(x, acc, "o-", ms=3, color=ACC_COLOUR, label="accuracy")
        ax.plot(x, conf, "s-", ms=3, color=CONF_COLOUR, label="mean max-softmax")
        ax.plot(x, _series(sw, "abstain"), "^-", ms=3, color=ABSTAIN_COLOUR, label="guard abstains")
        ax.axvline(sw["identity"], color="#bbbbbb", lw=0.8, ls=":")
        corr = "n/a" if sw["correlation"] is None else f"{sw['correlation']:.2f}"
        ax.set_title(f"{name}\noverconf {sw['overconfidence']:+.3f}, corr {corr}", fontsize=9)
        ax.set_xlabel(sw["unit"], fontsize=8)
        ax.set_ylim(-0.03, 1.03)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return _png(fig)


def detector_panels(sweeps: dict, guard_detector: str) -> bytes:
    """Each detector's mean score per step, as (mean - mean at the identity step) / (spread of
    the scores at the identity step): 0 = as in-distribution as the unchanged digits, -1 = one
    in-distribution standard deviation lower."""
    fig, axes = _grid(len(sweeps), 4, (3.4, 2.9))
    for ax, (name, sw) in zip(axes, sweeps.items()):
        x = _values(sw)
        ident = next(s for s in sw["steps"] if s["value"] == sw["identity"])
        for k, det in enumerate(ident["scores"]):
            z = [(s["scores"][det] - ident["scores"][det]) / max(ident["score_std"][det], 1e-12)
                 for s in sw["steps"]]
            ax.plot(x, np.clip(z, -20, 5), lw=2.4 if det == guard_detector else 1.0, label=det,
                    color=plt.cm.tab20(k % 20))
        ax.axhline(0, color="#bbbbbb", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel(sw["unit"], fontsize=8)
        ax.set_ylabel("mean score shift (sd)", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=6, loc="lower left")
    fig.tight_layout()
    return _png(fig)


def sweep_examples(rows: list[tuple[str, list[str], np.ndarray]]) -> bytes:
    """One test digit at every step of every sweep: rows of (sweep name, step labels, images)."""
    ncols = max(len(imgs) for _, _, imgs in rows)
    fig, axes = plt.subplots(len(rows), ncols, figsize=(0.75 * ncols, 0.95 * len(rows)), squeeze=False)
    for r, (name, labels, imgs) in enumerate(rows):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(imgs):
                ax.imshow(imgs[c], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
                ax.set_title(labels[c], fontsize=6, pad=1)
        axes[r, 0].text(-4, 14, name, ha="right", va="center", fontsize=8)
    fig.tight_layout(pad=0.2)
    return _png(fig)


def shift_curve(shifts: list[dict]) -> bytes:
    """The 1-vs-7 net on every test 1 moved dx pixels: share called 7, mean P(7), abstention."""
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    dx = [s["dx"] for s in shifts]
    ax.plot(dx, [s["called_7"] for s in shifts], "o-", color=CONF_COLOUR, label="share called 7")
    ax.plot(dx, [s["mean_p7"] for s in shifts], "s--", color="#1f77b4", ms=3, label="mean P(7)")
    ax.plot(dx, [s["abstain"] for s in shifts], "^-", color=ABSTAIN_COLOUR, label="guard abstains")
    ax.set_xlabel("shift of the test 1s, pixels (- = left, + = right)", fontsize=8)
    ax.set_ylim(-0.03, 1.03)
    ax.legend(fontsize=7)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)


def bar_rows(rows: list[dict]) -> bytes:
    """The 1-vs-7 net on a lone bar at each row: P(7), marker filled where the guard accepts."""
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    y = [r["row"] for r in rows]
    ax.plot(y, [r["p7"] for r in rows], "-", color=CONF_COLOUR, lw=1)
    for r in rows:
        accepted = r["verdict"] == "accept"
        ax.plot(r["row"], r["p7"], "o", ms=6, color=ABSTAIN_COLOUR if accepted else CONF_COLOUR,
                mfc=ABSTAIN_COLOUR if accepted else "white")
    ax.axhline(0.5, color="#bbbbbb", lw=0.8, ls=":")
    ax.set_xlabel("row of the bar (0 = top of the frame)", fontsize=8)
    ax.set_ylabel("P(7)", fontsize=8)
    ax.set_ylim(-0.03, 1.03)
    ax.set_title("lone bar: P(7) by row (filled red = the guard accepts)", fontsize=9)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    return _png(fig)
