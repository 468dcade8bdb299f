"""One self-contained HTML report of an evaluated run (the seed's demo, redone and extended).

Usage::

    result, sets = evaluate(run, ["fashion_mnist", "gaussian_noise"])
    build_report(run, result, sets, "report.html")

The page has inline CSS and every figure embedded as a base64 PNG, so it can be mailed or
archived as one file. It is written atomically: a temporary file in the same folder is renamed
onto the target only once it is complete. Its head carries a key of everything it is drawn from
(:func:`report_key`); a report already at the target with the same key is kept as it is, so a
second `abstain demo` on a cached run does not draw it again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from pathlib import Path

import matplotlib
import numpy as np
import torch

from ..atomic import write_text
from ..errors import InputError
from ..tensors import images_digest
from . import data, html, plots

log = logging.getLogger(__name__)

__all__ = ["build_report"]


def _check(result: dict, sets: list) -> None:
    if not sets or sets[0].name != "test":
        raise InputError("build_report: sets[0] must be the in-distribution 'test' set from evaluate()")
    missing = {"dataset", "accuracy", "ece", "guard", "confidence_table", "results"} - set(result)
    if missing:
        raise InputError(f"build_report: result lacks {sorted(missing)}; pass evaluate()'s result")


def _chicken_section(run) -> str:
    ch = data.chicken(run)
    names = run.guard.class_names
    label = int(ch.probs.argmax())
    return html.chicken(plots.image_png(ch.image), plots.softmax_bars(ch.probs, names),
                        names[label], float(ch.probs[label]), ch.verdict)


def _strips_section(run, result: dict, sets: list) -> str:
    test, partner = sets[0], data.strip_partner(sets)
    if partner is None:
        return html.strips(None, test.name, None)
    auroc = {(r["detector"], r["ood"]): r["auroc"] for r in result["results"]}
    rows = []
    for det in data.strip_detectors(run.guard.detector, test.scores):
        title = f"{det}\nAUROC {auroc.get((det, partner.name), float('nan')):.3f}"
        rows.append((title, test.scores[det], partner.scores[det]))
    png = plots.sorted_strips(rows, f"{test.name} ({result['dataset']})", partner.name)
    return html.strips(png, f"{test.name} ({result['dataset']})", partner.name)


def _roc_section(run, result: dict, sets: list) -> str:
    test, oods = sets[0], [s for s in sets[1:] if s.kind not in FAILURE_KINDS]
    det = run.guard.detector
    if not oods:
        return html.roc_and_histograms(None, None, det, result["guard"]["threshold"])
    roc_png = plots.roc_panels([(s.name, *s.roc_pair(test)) for s in oods + failure_sets(sets)], det)
    hist_png = plots.score_histograms(det, test.scores[det], [(s.name, s.scores[det]) for s in oods],
                                      result["guard"]["threshold"])
    return html.roc_and_histograms(roc_png, hist_png, det, result["guard"]["threshold"])


def _grid_png(examples: list) -> bytes | None:
    if not examples:
        return None
    return plots.image_grid(np.stack([e.image for e in examples]), [e.title for e in examples],
                            [e.colour for e in examples])


def _examples_section(run, sets: list) -> str:
    test, oods = sets[0], sets[1:]
    grids = [("Test images accepted", "In-distribution images the guard lets through.",
              data.in_examples(run, test, accepted=True)),
             ("Test images abstained on: the guard's false rejections",
              "These ARE in-distribution test images: every one shown here is a false rejection "
              "(the price of the threshold, about 1 - the calibrated acceptance rate).",
              data.in_examples(run, test, accepted=False))]
    if oods:
        grids += [("OOD images accepted: the guard's misses",
                   "Out-of-distribution images the guard wrongly lets through (set name on top).",
                   data.ood_examples(run, oods, accepted=True)),
                  ("OOD images abstained on", "Out-of-distribution images correctly refused.",
                   data.ood_examples(run, oods, accepted=False))]
    return html.examples([(title, note, _grid_png(ex)) for title, note, ex in grids])


def _reconstruction_section(run, items: list) -> str:
    pairs = data.reconstructions(run, items)
    return html.reconstructions(plots.reconstruction_pairs(pairs), run.guard.detector)


def _abs_section(run, items: list) -> str:
    """ABS's ten per-class reconstructions of the same items as the VAE's (seed 004: its decision
    can be read off them); empty when the run has no ABS model."""
    model = run.abs_model
    if model is None:
        return ""
    import io

    from PIL import Image

    from ..detectors.abs import abs_explain
    from ..explain import explain_grid
    images = np.stack([np.asarray(img, np.uint8) for _, img in items])
    _, probs, recs = abs_explain(model, images, "fast")
    buf = io.BytesIO()
    Image.fromarray(explain_grid(images / 255.0, recs, scale=3)).save(buf, format="PNG")
    names = run.guard.class_names
    rows = "; ".join(f"{name}: class {names[int(p.argmax())]} at {p.max():.2f}"
                     for (name, _), p in zip(items, probs))
    note = (f"One row per input ({', '.join(n for n, _ in items)}): the input, then the best reconstruction "
            f"of each class generator {names[0]}..{names[-1]} (fast inference). ABS says: {rows}. "
            "A class wins by explaining the input best; when none explains it, the confidence stays "
            "near uniform (0.10). `abstain check --explain IMAGE` prints the same for any image.")
    return html.section("abs", "Analysis by synthesis: what each class model sees",
                        html.figure(buf.getvalue(), "ABS reconstructions", note))


FAILURE_KINDS = ("mistakes", "attack")


def failure_sets(sets: list) -> list:
    return [s for s in sets if s.kind in FAILURE_KINDS]


KEY_META = "abstain-report-key"
_KEY_RE = re.compile(rf'<meta name="{KEY_META}" content="([0-9a-f]+)">')


def report_key(run, result: dict, sets: list) -> str:
    """Hash of what the page is drawn from: the run (its fingerprint: code, guard, checkpoints)
    and its folder, evaluate()'s result, every set's images, logits and scores, and the
    versions of the libraries that draw and compute it (torch: the chicken's and the
    reconstructions' figures are computed while drawing)."""
    h = hashlib.sha256()
    for part in (run.fingerprint, str(run.path), json.dumps(result, sort_keys=True, default=str),
                 matplotlib.__version__, np.__version__, torch.__version__):
        h.update(part.encode() + b"\0")
    for s in sets:
        arrays = {"images": s.images, "logits": s.logits, "partner": s.partner, "mask": s.mask,
                  **{f"score {d}": v for d, v in sorted(s.scores.items())}}
        h.update(f"{s.name}\0{s.kind}\0".encode())
        for what, a in arrays.items():
            h.update(f"{what}={'-' if a is None else images_digest(a)}\0".encode())
    return h.hexdigest()[:32]


def existing_key(out: Path) -> str | None:
    """The key in the head of the report at `out`, if there is one."""
    try:
        with open(out, encoding="utf-8", errors="replace") as fh:
            m = _KEY_RE.search(fh.read(4096))
    except OSError:
        return None
    return m.group(1) if m else None


def render(run, result: dict, sets: list, key: str | None = None) -> str:
    """The report as an HTML string (`key`: :func:`report_key`, written into its head)."""
    _check(result, sets)
    sets_all = sets
    sets = [s for s in sets if s.kind not in FAILURE_KINDS]      # OOD sets for the other sections
    items = data.reconstruction_items(run, sets, data.chicken_image())   # shown by the VAE and by ABS
    parts = [html.header(str(run.path), result), _chicken_section(run),
             html.confidence_table(result["confidence_table"]),
             html.results(result["results"], run.guard.detector),
             _strips_section(run, result, sets), _roc_section(run, result, sets_all),
             _examples_section(run, sets), _reconstruction_section(run, items), _abs_section(run, items)]
    return html.page(f"abstain report: {result['dataset']}", "\n".join(parts),
                     {KEY_META: key} if key else None)


def build_report(run, result: dict, sets: list, out: str | Path) -> Path:
    """Write the report for `run` (with evaluate()'s `result` and `sets`) to `out`; return its
    path. A report already at `out` drawn from the same inputs (:func:`report_key`) is kept."""
    out = Path(out)
    start = time.perf_counter()
    _check(result, sets)
    key = report_key(run, result, sets)
    if existing_key(out) == key:
        log.info("report %s is up to date (%.1f s to check)", out, time.perf_counter() - start)
        return out
    text = render(run, result, sets, key)
    write_text(out, text)
    log.info("wrote report %s (%.0f kB) in %.1f s", out, out.stat().st_size / 1024,
             time.perf_counter() - start)
    return out
