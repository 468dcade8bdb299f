"""HTML assembly: one self-contained page (inline CSS, PNGs as base64 data URIs).

Every piece of text that reaches the page goes through :func:`esc` (html.escape).
"""
from __future__ import annotations

import base64
import html
import math

from ..summary import guard_label

SEED_FASHION_ROW = {">0.99": 0.634, ">0.95": 0.743, ">0.75": 0.889}
KIND_ORDER = ("mistakes", "attack", "dataset", "far", "transform", "shift")
KIND_TITLES = {
    "mistakes": "The classifier's own test-set mistakes (positives = correctly classified test images)",
    "attack": "Adversarial inputs (positives = the clean images; negatives = the adversarial versions "
              "that fooled the classifier; attack success rate under each column name)",
    "dataset": "Another dataset (its test split)",
    "far": "Far OOD: clearly not digits (noise, letters, photo crops)",
    "transform": "Transformed test images (rotated, inverted, shifted)",
    "shift": "Covariate shift: the same classes in another style. Accepting these can be right, "
             "so they are reported separately and are not counted as failures of the guard",
}

CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;max-width:1150px;margin:24px auto;
padding:0 16px;color:#222;line-height:1.45}
h1{margin-bottom:4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:36px}
table{border-collapse:collapse;margin:10px 0;font-size:14px}
th,td{border:1px solid #ccc;padding:4px 9px;text-align:right}
th{background:#f3f3f3}td.name,th.name{text-align:left}
td.best{background:#d9f2d9;font-weight:bold}tr.seed td{font-style:italic;color:#555}
tr.guard td.name{font-weight:bold}
.note{color:#555;font-size:13px}.fig{margin:8px 0 4px}.fig img{max-width:100%}
.small{font-size:12px;color:#666}.verdict{font-size:17px}
.accept{color:#1a7f1a;font-weight:bold}.abstain{color:#b3261e;font-weight:bold}
.side{display:flex;gap:24px;align-items:flex-start;flex-wrap:wrap}
"""


def esc(value) -> str:
    """Escape any value for HTML text or attribute content."""
    return html.escape(str(value), quote=True)


def fmt_pct(share: float, digits: int = 1) -> str:
    """A share in [0, 1] as a percentage, e.g. 0.634 -> '63.4 %' (how tables print shares)."""
    if share is None or not math.isfinite(share):
        return "n/a"
    return f"{100 * share:.{digits}f} %"


def fmt_num(value: float, digits: int = 3) -> str:
    """A metric value with fixed decimals; 'n/a' for missing or non-finite."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f}"


def img(png: bytes, alt: str, width: int | None = None) -> str:
    """An <img> tag holding the PNG as a base64 data URI."""
    data = base64.b64encode(png).decode("ascii")
    size = f' width="{int(width)}"' if width else ""
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"{size}>'


def figure(png: bytes, alt: str, caption: str, width: int | None = None) -> str:
    return f'<div class="fig">{img(png, alt, width)}<p class="note">{esc(caption)}</p></div>'


def section(anchor: str, title: str, body: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>\n{body}\n</section>'


def page(title: str, body: str, meta: dict[str, str] | None = None) -> str:
    """The full document around the sections; `meta`: extra <meta name content> tags."""
    tags = "".join(f'<meta name="{esc(k)}" content="{esc(v)}">\n' for k, v in (meta or {}).items())
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n" + tags +
            f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            f"<h1>{esc(title)}</h1>\n{body}\n</body>\n</html>\n")


def _row(cells: list[str], cls: str = "") -> str:
    attr = f' class="{cls}"' if cls else ""
    return f"<tr{attr}>" + "".join(cells) + "</tr>"


def header(run_path: str, result: dict) -> str:
    """Dataset, accuracy, ECE, the guard and its acceptance rate per set, what FPR95 means."""
    g = result["guard"]
    facts = [("run", run_path), ("dataset", result["dataset"]),
             ("test accuracy", fmt_pct(result["accuracy"], 2)),
             ("expected calibration error (ECE, 15 bins)", fmt_num(result["ece"], 4)),
             ("guard detector", guard_label(g)), ("guard threshold", f"{g['threshold']:.6g}"),
             ("calibrated to accept", f"{fmt_pct(g['target_accept'])} of validation images")]
    top = "<table>" + "".join(_row([f'<th class="name">{esc(k)}</th>', f"<td>{esc(v)}</td>"])
                              for k, v in facts) + "</table>"
    kinds, sizes = result.get("set_kinds", {}), result.get("set_sizes", {})
    rows = [_row([f'<td class="name">{esc(name)}</td>', f"<td>{esc(kinds.get(name, ''))}</td>",
                  f"<td>{esc(sizes.get(name, ''))}</td>", f"<td>{esc(fmt_pct(share))}</td>"])
            for name, share in {**g["accepted"], **g.get("accepted_failures", {})}.items()]
    acc = ('<table><tr><th class="name">set</th><th>kind</th><th>images</th><th>accepted by the guard</th>'
           "</tr>" + "".join(rows) + "</table>")
    note = ('<p class="note">Detectors score higher = more in-distribution; the guard accepts an image '
            "when its detector's score is at or above the threshold. On the test set the accepted share "
            "should be close to the calibrated rate; on OOD sets, the test mistakes and the successful "
            "attacks it should be close to 0. "
            "<b>FPR95</b> = the fraction of OOD inputs accepted when the threshold accepts 95% of "
            "in-distribution inputs (lower is better).</p>")
    return section("summary", "Summary", top + acc + note)


def chicken(image_png: bytes, bars_png: bytes, class_name: str, confidence: float, verdict) -> str:
    """The seed's chicken test: the image, expected vs actual softmax, the guard's verdict."""
    cls = "accept" if verdict.verdict == "accept" else "abstain"
    text = (f'<p class="verdict">The classifier says <b id="chicken-class">{esc(class_name)}</b> '
            f'with confidence <b id="chicken-confidence">{esc(fmt_pct(confidence))}</b>. '
            f'The guard: <span class="{cls}">{esc(verdict.verdict)}</span>.</p>'
            f'<p class="note">{esc(verdict.reason)}</p>')
    intro = ('<p class="note">The seed passed a photo of a chicken through an MNIST model and got 99.9% '
             "confidence for a 5. No chicken photo is bundled offline, so scikit-image's "
             "<i>horse</i> silhouette, MNIST-ified, plays the chicken.</p>")
    body = (intro + '<div class="side">' + figure(image_png, "the MNIST-ified chicken", "the input (28x28)")
            + figure(bars_png, "expected vs actual softmax",
                     "Expected (uniform, the model has no idea) vs actual softmax for this image.", 620)
            + "</div>" + text)
    return section("chicken", "The chicken test", body)


def confidence_table(table: dict[str, dict[str, float]]) -> str:
    """Share of each set with max softmax above 0.99 / 0.95 / 0.75, plus the seed's row."""
    levels = list(next(iter(table.values())).keys()) if table else list(SEED_FASHION_ROW)
    head = _row(['<th class="name">set</th>'] + [f"<th>max softmax {esc(lv)}</th>" for lv in levels])
    rows = [_row([f'<td class="name">{esc(name)}</td>']
                 + [f"<td>{esc(fmt_pct(shares.get(lv)))}</td>" for lv in levels])
            for name, shares in table.items()]
    seed = _row(['<td class="name">FashionMNIST in the seed (published)</td>']
                + [f"<td>{esc(fmt_pct(SEED_FASHION_ROW.get(lv)))}</td>" for lv in levels], "seed")
    note = ('<p class="note">How often the classifier is very sure. On OOD sets these shares should be '
            "small; the seed found most FashionMNIST items classified as a digit with over 99% "
            "confidence.</p>")
    return section("confidence", "Confidence on each set (the seed's table)",
                   note + '<table id="confidence-table">' + head + "".join(rows) + seed + "</table>")


def _results_table(rows: list[dict], detectors: list[str], sets: list[str], guard: str) -> str:
    cell = {(r["detector"], r["ood"]): r for r in rows}
    best = {s: max((cell[(d, s)]["auroc"] for d in detectors if (d, s) in cell), default=None)
            for s in sets}
    def title(s: str) -> str:
        rate = next((r["success_rate"] for r in rows if r["ood"] == s and "success_rate" in r), None)
        return esc(s) if rate is None else f'{esc(s)}<br><span class="small">success {esc(fmt_pct(rate))}</span>'
    head = _row(['<th class="name">detector</th>'] + [f"<th>{title(s)}</th>" for s in sets])
    body = []
    for d in detectors:
        cells = [f'<td class="name">{esc(d)}{" (guard)" if d == guard else ""}</td>']
        for s in sets:
            r = cell.get((d, s))
            if r is None:
                cells.append("<td>n/a</td>")
                continue
            top = ' class="best"' if r["auroc"] == best[s] else ""
            cells.append(f"<td{top}>{esc(fmt_num(r['auroc']))}<br>"
                         f'<span class="small">FPR95 {esc(fmt_pct(r["fpr95"]))}</span></td>')
        body.append(_row(cells, "guard" if d == guard else ""))
    return "<table>" + head + "".join(body) + "</table>"


def results(rows: list[dict], guard: str) -> str:
    """AUROC and FPR95 per detector and OOD set, one table per kind of set; best AUROC marked."""
    if not rows:
        return section("results", "Detectors against OOD sets", "<p>No OOD sets were evaluated.</p>")
    detectors = list(dict.fromkeys(r["detector"] for r in rows))
    kinds = {r["ood"]: r["kind"] for r in rows}
    order = list(KIND_ORDER) + sorted(set(kinds.values()) - set(KIND_ORDER))
    parts = ['<p class="note">Each cell: AUROC (1 = perfect separation, 0.5 = chance) and FPR95 '
             "(share of OOD accepted at 95% in-distribution acceptance). Green = best AUROC in the "
             "column.</p>"]
    for kind in order:
        sets = [s for s, k in kinds.items() if k == kind]
        if sets:
            parts.append(f"<h3>{esc(KIND_TITLES.get(kind, kind))}</h3>")
            parts.append(_results_table(rows, detectors, sets, guard))
    return section("results", "Detectors against OOD sets", "\n".join(parts))


def strips(png: bytes | None, in_name: str, ood_name: str | None) -> str:
    """The seed's sorted strips."""
    if png is None:
        return section("strips", "Sorted by score", "<p>No OOD set to compare with.</p>")
    note = (f"Every image of {in_name} (blue) and {ood_name} (pink) is one thin vertical line, sorted by "
            "the detector's score from lowest (left) to highest (right). Ideally all pink lines sit on "
            "the left. Where there are more images than pixel columns, neighbouring lines are merged "
            "and their colours mixed.")
    return section("strips", f"Sorted by score: {in_name} vs {ood_name}",
                   figure(png, "sorted strips", note))


def roc_and_histograms(roc_png: bytes | None, hist_png: bytes | None, detector: str,
                       threshold: float) -> str:
    if roc_png is None:
        return section("roc", "ROC curves and score histograms", "<p>No OOD sets were evaluated.</p>")
    body = (figure(roc_png, "ROC curves", "ROC per OOD set and failure source (the classifier's "
                   "mistakes, each attack): x = share of the failures accepted, y = share of "
                   f"test images accepted, one curve per detector ({detector}, the guard's, drawn "
                   "thicker); the dotted line marks 95% acceptance.")
            + figure(hist_png, "score histograms", f"Density-normalised histograms of {detector} "
                     f"scores, test vs each OOD set; red line = the guard's threshold ({threshold:.4g})."))
    return section("roc", "ROC curves and score histograms", body)


def examples(grids: list[tuple[str, str, bytes | None]]) -> str:
    """Example grids: (title, explanation, PNG or None when there is no such image)."""
    parts = ['<p class="note">Small titles: the predicted class and its softmax confidence '
             "(red = wrong prediction, test set only).</p>"]
    for title, note, png in grids:
        parts.append(f"<h3>{esc(title)}</h3><p class=\"note\">{esc(note)}</p>")
        parts.append(img(png, title) if png is not None else "<p>None.</p>")
    return section("examples", "What the guard accepts and abstains on", "\n".join(parts))


def reconstructions(png: bytes, detector: str) -> str:
    note = ("Top: the input; bottom: the VAE's mean reconstruction. A digit should come back well, "
            "an OOD image badly. The number under each caption is the image's score under "
            f"{detector}, the guard's detector (higher = more in-distribution).")
    return section("reconstructions", "VAE reconstructions", figure(png, "reconstructions", note))
