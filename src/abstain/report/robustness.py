"""`abstain robustness --report`: a standalone page with the accuracy-vs-eps curves (the ABS
authors' released numbers marked), the noise check, distal images and minimal adversarials."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..robustness.evaluate import ANCHORS
from ..robustness.summary import attacked_checkpoints, checkpoint_label
from . import html, plots
from .html import esc, fmt_num, fmt_pct
from .plots import plt

COLOURS = {"cnn": "#1f77b4", "madry": "#ff7f0e", "abs": "#2ca02c", "binary_abs": "#9467bd"}
NORM_TITLES = {"l2": "L2", "linf": "L-infinity"}


def _colour(name: str, i: int) -> str:
    return COLOURS.get(name, f"C{i + 4}")


def curves_png(result: dict) -> bytes:
    """Accuracy against perturbation size, one panel per norm, one line per model; the authors'
    medians are crosses at accuracy 0.5, their accuracy at L2 = 1.5 a diamond."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    for ax, norm in zip(axes, ("l2", "linf")):
        for i, (name, r) in enumerate(result["models"].items()):
            c = r[f"{norm}_curve"]
            ax.plot(c["eps"], c["accuracy"], color=_colour(name, i), lw=1.8, label=name)
            anchor = ANCHORS[f"{norm}_median"].get(name)
            if anchor is not None:
                ax.plot([anchor], [0.5], "x", color=_colour(name, i), ms=9, mew=2)
            if norm == "l2" and name in ANCHORS["acc_l2_1.5"]:
                ax.plot([1.5], [ANCHORS["acc_l2_1.5"][name]], "D", color=_colour(name, i), ms=6,
                        mfc="none", mew=1.5)
        ax.axhline(0.5, color="#bbbbbb", ls=":", lw=1)
        ax.set_xlabel(f"{NORM_TITLES[norm]} perturbation size (eps)")
        ax.set_ylabel("accuracy (minimal perturbation > eps)")
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{NORM_TITLES[norm]}: x = authors' median, diamond = authors' acc at 1.5", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return plots._png(fig)


def noise_png(result: dict) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.2))
    for ax, kind in zip(axes, ("uniform", "gaussian")):
        for i, (name, r) in enumerate(result["models"].items()):
            ax.plot(r["noise"][kind]["size"], r["noise"][kind]["accuracy"], "o-", ms=3,
                    color=_colour(name, i), label=name)
        ax.set_xlabel("L-inf amplitude" if kind == "uniform" else "standard deviation")
        ax.set_ylabel("accuracy (every draw correct)")
        ax.set_title(f"{kind} noise", fontsize=10)
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return plots._png(fig)


def _u8(images: np.ndarray) -> np.ndarray:
    return (np.clip(images, 0, 1) * 255).round().astype(np.uint8)


def distal_png(result: dict, arrays: dict) -> bytes:
    images, titles = [], []
    for name, r in result["models"].items():
        images.append(arrays["models"][name]["distal"])
        titles += [f"{name}\n{c}: {100 * p:.0f}%" for c, p in enumerate(r["distal"]["confidence"])]
    return plots.image_grid(_u8(np.concatenate(images)), titles, ncols=10)


def examples_png(result: dict, arrays: dict, norm: str, k: int = 8) -> bytes:
    """Row 1: k clean test images; one row per model: its minimal adversarial of each."""
    images, titles, colours = [_u8(arrays["x"][:k])], [f"clean {c}" for c in arrays["y"][:k]], []
    colours += ["black"] * len(titles)
    for name, r in result["models"].items():
        adv = arrays["models"][name]
        images.append(_u8(adv[norm][:k]))
        for j in range(k):
            size = r[f"{norm}_minimal"][j]
            titles.append(f"{name} -> {adv['pred_' + norm][j]}\n{fmt_num(size, 2) if size is not None else 'inf'}")
            colours.append("#b3261e" if size is not None else "black")
    return plots.image_grid(np.concatenate(images), titles, colours, ncols=k)


def summary_table(result: dict) -> str:
    head = ["model", "clean accuracy", "L2 median (authors')", "L-inf median (authors')",
            "acc at L2 1.5 (authors')", "acc at L-inf 0.3", "acc, Gaussian noise sd 0.3", "seconds"]
    rows = []
    for name, r in result["models"].items():
        def cell(key, value, pct=False):
            a = ANCHORS.get(key, {}).get(name)
            text = fmt_pct(value) if pct else (fmt_num(value) if value is not None else "inf")
            return esc(text) + (f' <span class="small">({esc(fmt_pct(a) if pct else a)})</span>'
                                if a is not None else "")
        gauss = dict(zip(r["noise"]["gaussian"]["size"], r["noise"]["gaussian"]["accuracy"])).get(0.3)
        rows.append([esc(name), esc(fmt_pct(r["clean_accuracy"])), cell("l2_median", r["l2_median"]),
                     cell("linf_median", r["linf_median"]), cell("acc_l2_1.5", r["acc_l2_1.5"], True),
                     esc(fmt_pct(r["acc_linf_0.3"])), esc(fmt_pct(gauss)),
                     esc(f"{sum(r['seconds'].values()):.0f}")])
    th = "".join(f'<th class="{"name" if i == 0 else ""}">{esc(h)}</th>' for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f'<td class="{"name" if i == 0 else ""}">{c}</td>'
                                    for i, c in enumerate(cells)) + "</tr>" for cells in rows)
    return f"<table><tr>{th}</tr>{body}</table>"


def build_robustness_report(result: dict, arrays: dict, out: str | Path) -> Path:
    s = result["settings"]
    intro = (f'<p class="note">{esc(s["n"])} test images (seed {esc(s["seed"])}). Per image and norm, the '
             "minimal perturbation is the smallest over every attack that fooled the model (noise, "
             "decision-based lines toward other-class images and reconstructions, FGSM line search, "
             "bisection on eps with BIM and PGD with restarts); accuracy at eps = share of images whose "
             "minimal perturbation exceeds eps. Numbers in brackets: the ABS authors' released curves "
             "(Schott et al. 2019).</p>")
    named = attacked_checkpoints(result)
    if named:
        intro += ('<p class="note">Checkpoints attacked: ' + "; ".join(
            f"{esc(name)}: {esc(checkpoint_label(c))}" for name, c in named.items()) + ".</p>")
    body = [html.section("summary", "Summary", intro + summary_table(result)),
            html.section("curves", "Accuracy against perturbation size",
                         html.figure(curves_png(result), "accuracy vs eps", "One line per model.")),
            html.section("noise", "Noise check (gradient-free)",
                         html.figure(noise_png(result), "noise accuracy", "If noise hurts a model more "
                                     "than its gradient attacks suggest, its gradients are masked.")),
            html.section("distal", "Distal images", html.figure(
                distal_png(result, arrays), "distal images", "From uniform noise, signed gradient steps "
                "on one class's log-softmax until the model gives it 90% (confidence reached below).")),
            *(html.section(f"examples-{n}", f"Minimal {NORM_TITLES[n]} adversarials", html.figure(
                examples_png(result, arrays, n), f"{n} adversarials", "Title: model -> predicted class, "
                "perturbation size.")) for n in ("l2", "linf"))]
    out = Path(out)
    write_text(out, html.page("abstain robustness", "\n".join(body)))
    return out
