"""The probes section of the report (and `abstain probe --report`'s standalone page).

Built from run_probes()'s JSON-able result alone: the probe images are deterministic, so they
are drawn again here rather than carried in the result.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import write_text
from ..data.datasets import load_dataset
from ..probes.one_vs_seven import special_images
from ..probes.shapes import make_shapes
from ..probes.sweeps import SWEEPS, sample_test
from . import html, plots
from . import probe_plots as pp
from .html import esc, fmt_num, fmt_pct

ACCEPT_COLOUR, ABSTAIN_COLOUR = "#b3261e", "#1a7f1a"      # an accepted non-digit is a miss
COLLAPSE = (0.5, 0.8)       # a step "collapses" when accuracy < 0.5 while confidence >= 0.8


def _table(head: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    th = "".join(f'<th class="{"name" if i == 0 else ""}">{esc(h)}</th>' for i, h in enumerate(head))
    body = []
    for k, cells in enumerate(rows):
        cls = ' style="background:#fde2e0"' if row_classes and row_classes[k] else ""
        tds = "".join(f'<td class="{"name" if i == 0 else ""}">{c}</td>' for i, c in enumerate(cells))
        body.append(f"<tr{cls}>{tds}</tr>")
    return f"<table><tr>{th}</tr>{''.join(body)}</table>"


def _verdict(v: str) -> str:
    return f'<span class="{esc(v)}">{esc(v)}</span>'


def _one_vs_seven(r: dict) -> str:
    if "skipped" in r:
        return f"<h3>The 1-vs-7 experiment</h3><p>{esc(r['skipped'])}</p>"
    g = r["guard"]
    rows = []
    for row in r["images"]:
        seed = r["seed"].get(row["name"])
        rows.append([esc(row["name"]), fmt_num(row["p1"], 4), fmt_num(row["p7"], 4), _verdict(row["verdict"]),
                     fmt_num(row["score"], 3), esc(f"P({seed['class']}) = {seed['probability']}") if seed else ""])
    names, images = special_images(load_dataset("mnist"))
    by_name = {row["name"]: row for row in r["images"]}
    titles = [f"{n}\nP(7) {by_name[n]['p7']:.4f}\n{by_name[n]['verdict']}" for n in names]
    colours = ["#1f5fa0" if by_name[n]["verdict"] == "accept" else "#555555" for n in names]
    o, t = r["other_test_digits"], r["test_1s_7s"]
    note = (f'<p class="note">A CNN trained only on MNIST 1s and 7s (no shift augmentation, as in the seed; '
            f"{r['config']['epochs']} epochs) reaches {esc(fmt_pct(r['test_accuracy'], 2))} on their test "
            f"images. Its own guard ({esc(g['detector'])}, fitted on the training 1s and 7s, detectors "
            f"{esc(', '.join(g['detectors']))}) accepts {esc(fmt_pct(1 - t['abstain']))} of the test 1s and 7s "
            f"and abstains on {esc(fmt_pct(o['abstain']))} of the other test digits (0, 2-6, 8, 9), on which the "
            f"binary net's mean confidence is {esc(fmt_num(o['confidence']))}. Grid titles: blue = the guard "
            "accepts, grey = it abstains (the drawn 1 and 7 and the small shifts should be accepted; the "
            "bars and the dash should not).</p>")
    return ("<h3>The 1-vs-7 experiment (the seed)</h3>" + note
            + _table(["image", "P(1)", "P(7)", "guard", f"{g['detector']} score", "seed"], rows)
            + html.img(plots.image_grid(images, titles, colours, ncols=7), "1-vs-7 probe images")
            + '<div class="side">'
            + html.figure(pp.shift_curve(r["shifts"]), "shifted 1s", "Every test 1 moved dx pixels: the "
                          "share the binary net calls 7, its mean P(7), and the share its guard abstains on.")
            + html.figure(pp.bar_rows(r["bar_rows"]), "bar rows", "A lone 7-wide bar drawn at every row: "
                          "the 'top bar' above sits at rows 8-9, where the mean training 7 has its bar.")
            + "</div>")


def _sweep_rows(sw: dict) -> tuple[list[list[str]], list[str]]:
    rows, flags = [], []
    for s in sw["steps"]:
        collapsed = s["accuracy"] < COLLAPSE[0] and s["confidence"] >= COLLAPSE[1]
        rows.append([esc(f"{s['value']:g}"), fmt_pct(s["accuracy"]), fmt_num(s["confidence"]),
                     fmt_pct(s["abstain"])])
        flags.append("collapse" if collapsed else "")
    return rows, flags


def _examples_png(result: dict) -> bytes:
    data = load_dataset(result["dataset"])
    _, x, _ = sample_test(data, result["settings"]["n"], result["settings"]["seed"])
    rows = [(name, [f"{v:g}" for v in SWEEPS[name].values],
             np.concatenate([SWEEPS[name].apply(x[:1], v) for v in SWEEPS[name].values]))
            for name in result["sweeps"] if name in SWEEPS]
    return pp.sweep_examples(rows)


def _sweeps(result: dict) -> str:
    sweeps, det = result["sweeps"], result["guard"]["detector"]
    summary = [[esc(n), f"{sw['overconfidence']:+.3f}",
                "n/a" if sw["correlation"] is None else f"{sw['correlation']:.3f}",
                fmt_pct(sw["min_accuracy"]), fmt_num(sw["confidence_at_min_accuracy"]),
                fmt_pct(sw["abstain_at_min_accuracy"])] for n, sw in sweeps.items()]
    note = (f'<p class="note">The same {result["settings"]["n"]} test images (seed {result["settings"]["seed"]}) '
            "at every step. <b>overconfidence</b> = mean over the steps of (mean max-softmax - accuracy): the "
            "classifier alone, 0 = as sure as it is right, positive = surer than right. <b>corr</b> = Pearson "
            "correlation between the guard's abstention rate and the classifier's error rate (1 - accuracy) "
            "along the sweep: near 1 when the guard abstains exactly where the classifier fails. Detectors "
            f"scored: {esc(', '.join(result['settings']['sweep_detectors']))}. Rows in red: "
            f"accuracy below {COLLAPSE[0]:.0%} while mean confidence stays at or above {COLLAPSE[1]}.</p>")
    parts = ["<h3>Sweeps on real test digits</h3>", note,
             _table(["sweep", "overconfidence", "corr(abstain, error)", "lowest accuracy",
                     "confidence there", "guard abstains there"], summary),
             html.figure(_examples_png(result), "sweep examples", "One test digit at every step of each sweep."),
             html.figure(pp.sweep_panels(sweeps), "sweeps", "Accuracy (black), mean max-softmax (orange) and "
                         "the guard's abstention rate (red) against the size of the change; orange shading "
                         "= confidence above accuracy."),
             html.figure(pp.detector_panels(sweeps, det), "detector scores", "Each detector's mean score, "
                         "in standard deviations of its score on the unchanged digits, relative to them "
                         f"(clipped to [-20, 5]); {det}, the guard's, drawn thicker.")]
    by = [n for n, sw in sweeps.items() if sw.get("correlation_by")]
    if by:
        dets = list(sweeps[by[0]]["correlation_by"])
        rows = [[esc(d)] + ["n/a" if sweeps[n]["correlation_by"].get(d) is None
                            else f"{sweeps[n]['correlation_by'][d]:.2f}" for n in by] for d in dets]
        parts += ['<p class="note">Each scored detector as if it were the guard: thresholded to accept the '
                  "guard's share of the validation images, the Pearson correlation of its abstention rate with "
                  "the classifier's error rate along each sweep (the guard's detector first; its row is the "
                  "corr column above).</p>", _table(["detector", *by], rows)]
    cells = []
    for name, sw in sweeps.items():
        rows, flags = _sweep_rows(sw)
        cells.append(f"<div><b>{esc(name)}</b> ({esc(sw['unit'])})"
                     + _table(["step", "accuracy", "confidence", "guard abstains"], rows, flags) + "</div>")
    parts.append('<div class="side">' + "".join(cells) + "</div>")
    return "\n".join(parts)


def _shapes(result: dict) -> str:
    names, images = make_shapes()
    rows = {s["name"]: s for s in result["shapes"]}
    titles = [f"{n}\n{rows[n]['class']} {rows[n]['confidence']:.2f}\n{rows[n]['verdict']}" for n in names]
    colours = [ACCEPT_COLOUR if rows[n]["verdict"] == "accept" else ABSTAIN_COLOUR for n in names]
    sure = sum(s["confidence"] >= 0.9 for s in result["shapes"])
    abstained = sum(s["verdict"] == "abstain" for s in result["shapes"])
    note = (f'<p class="note">{len(names)} procedurally drawn shapes (about 2.5 px strokes, in the central '
            "20 x 20 box) and letters (DejaVu Sans, MNIST-ified). Titles: class, max softmax, the guard's "
            f"verdict; green = abstains, red = accepts. The classifier is at least 0.9 sure on {sure}; "
            f"the guard abstains on {abstained}.</p>")
    return "<h3>Shapes that are not digits</h3>" + note + html.img(
        plots.image_grid(images, titles, colours, ncols=7), "shapes")


def section(result: dict) -> str:
    """The probes section: 1-vs-7, sweeps, shapes."""
    intro = ('<p class="note">What does the network really look for? Shortcut and invariance probes '
             "(seed 003), the guard's verdict beside the classifier's confidence. Run "
             f"<code>{esc(result['run'])}</code> ({esc(result['dataset'])}), guard "
             f"{esc(result['guard']['detector'])}.</p>")
    body = intro + _one_vs_seven(result["one_vs_seven"]) + _sweeps(result) + _shapes(result)
    return html.section("probes", "Probes: what does the network look for?", body)


def build_probe_report(result: dict, out: str | Path) -> Path:
    """Write the probes section as a standalone page, atomically; return its path."""
    out = Path(out)
    write_text(out, html.page(f"abstain probes: {result['dataset']}", section(result)))
    return out
