"""ABS's mistakes on the MNIST test set, drawn: each misclassified digit beside the best
explanation of its true class and of the class ABS chose.

Usage: python bench/abs_errors.py [abs_speed.py's model options] [--mode faithful] [--n 10000] [--threads 2] [--compare FILE.json ...] [--out FILE]
       python bench/abs_errors.py [the same model options] --plot FILE.json
The model is the one bench/abs_speed.py trains (or loads from its cache) with the same options.
Classifies the first N test images in `--mode` (default faithful) and writes a JSON: the
accuracy, and per mistake its test index, label, prediction, ABS's confidence, the two classes'
losses (a_y l_y, the negated logits) and the rank of the true class; the most frequent
(label, prediction) pairs; the median confidence of right and wrong answers, and ABS with a
reject option: for confidence thresholds 0.2 / 0.5 / 0.9, the share of images answered and the
mistakes among them. `--compare` other such JSONs (another seed, another recipe, or
bench/abs_speed.py's JSON with its `faithful_errors`): how many mistakes each shares with this
one, among the first N test images. Draws the mistakes next to the JSON (same name, .png): per mistake the input, G_label(z*)
and G_pred(z*), titled "index: label->pred". `--plot` redraws a JSON's PNG from its mistakes
alone (seconds, not the whole test set), with the JSON's mode, after checking that the model
given still makes each of them.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from abs_speed import ROOT, add_model_options, model_from_args, save_png  # noqa: E402  (a sibling bench script)
from abstain.atomic import write_json
from abstain.data.datasets import load_dataset
from abstain.explain import explain_grid
from abstain.models.abs_modes import MODES
from abstain.tensors import to_tensor

DEFAULT_OUT = ROOT / "bench" / "results" / "abs_errors.json"
CONFIDENCE_THRESHOLDS = (0.2, 0.5, 0.9)


def mistakes(model, x: np.ndarray, y: np.ndarray, batch: int = 500) -> tuple[dict, list[dict], np.ndarray]:
    """Classify x with the model's mode; return the accuracy summary, one record per mistake and
    the mistakes' three images each (input, true class's and predicted class's reconstruction)."""
    wrong, tiles, top, right = [], [], [], []
    with torch.no_grad():
        for i in tqdm(range(0, len(x), batch), desc="ABS mistakes", unit="batch"):
            xb = to_tensor(x[i:i + batch])
            logits, recs = model.explain(xb)
            conf = model.confidence(logits)
            pred = logits.argmax(1).numpy()
            yb = y[i:i + batch]
            top.append(conf.max(1).values.numpy())
            right.append(pred == yb)
            for j in np.flatnonzero(pred != yb):
                t, p = int(yb[j]), int(pred[j])
                wrong.append({"index": i + int(j), "label": t, "pred": p,
                              "confidence": round(float(conf[j, p]), 4),
                              "loss_label": round(float(-logits[j, t]), 5),
                              "loss_pred": round(float(-logits[j, p]), 5),
                              "label_rank": int((logits[j] > logits[j, t]).sum()) + 1})
                tiles.append(np.stack([xb[j, 0].numpy(), recs[j, t].numpy(), recs[j, p].numpy()]))
    top, right = np.concatenate(top), np.concatenate(right)
    summary = {"n": len(x), "accuracy": float(right.mean()), "errors": len(wrong),
               "median_confidence_correct": float(np.median(top[right])) if right.any() else None,
               "median_confidence_mistakes": float(np.median(top[~right])) if wrong else None,
               # ABS as a classifier with a reject option: answer only when its confidence is at least t
               "confident_only": [{"threshold": t, "answered": float((top >= t).mean()),
                                   "mistakes_answered": int((~right & (top >= t)).sum()),
                                   "accuracy_answered": float(right[top >= t].mean()) if (top >= t).any() else None}
                                  for t in CONFIDENCE_THRESHOLDS]}
    return summary, wrong, np.array(tiles).reshape(-1, 3, 28, 28)


def error_indices(path: Path) -> set[int]:
    """The mistakes' test indices in a JSON of this script or of bench/abs_speed.py."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        sys.exit(f"--compare {path}: cannot read it as JSON ({e.__class__.__name__})")
    if isinstance(data, dict) and isinstance(data.get("mistakes"), list) \
            and all(isinstance(m, dict) and isinstance(m.get("index"), int) for m in data["mistakes"]):
        return {m["index"] for m in data["mistakes"]}
    if isinstance(data, dict) and isinstance(data.get("faithful_errors"), list) \
            and all(isinstance(i, int) for i in data["faithful_errors"]):
        return set(data["faithful_errors"])
    sys.exit(f"--compare {path}: has neither `mistakes` (abs_errors.py) nor `faithful_errors` (abs_speed.py)")


def plot(tiles: np.ndarray, wrong: list[dict], title: str, path: Path, columns: int = 6) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = max(1, math.ceil(len(wrong) / columns))
    height = 1.05 * rows + 0.4
    fig, axes = plt.subplots(rows, columns, figsize=(2.1 * columns, height), dpi=110, squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < len(wrong):          # the input, then the two reconstructions, as `check --explain` draws them
            ax.imshow(explain_grid(tiles[k][:1], tiles[k][None, 1:], scale=1), cmap="gray", vmin=0, vmax=255)
            m = wrong[k]
            ax.set_title(f"{m['index']}: {m['label']}->{m['pred']} ({m['confidence']:.2f})", fontsize=7, pad=2)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / height))
    save_png(fig, path, grey=True)


def earlier_run(path: Path) -> dict:
    """An earlier JSON of this script, checked before any model is trained or loaded."""
    try:
        res = json.loads(path.read_text())
        ok = res["mode"] in MODES and isinstance(res["n"], int) \
            and all(isinstance(m[k], int) for m in res["mistakes"] for k in ("index", "label", "pred"))
    except (OSError, ValueError, KeyError, TypeError) as e:
        sys.exit(f"--plot {path}: not a JSON of this script ({e.__class__.__name__})")
    if not ok:
        sys.exit(f"--plot {path}: not a JSON of this script (mode, n or a mistake's index, label, pred)")
    return res


def redraw(model, res: dict, path: Path) -> None:
    """Redraw the PNG of an earlier run from its JSON: classify only its mistakes again."""
    wrong, mode = res["mistakes"], res["mode"]
    idx = [m["index"] for m in wrong]
    if not idx:
        again, tiles = [], np.zeros((0, 3, 28, 28), np.float32)
    else:
        data = load_dataset("mnist")
        _, again, tiles = mistakes(model.with_mode(mode), data.x_test[idx], data.y_test[idx])
    if [(m["label"], m["pred"]) for m in again] != [(m["label"], m["pred"]) for m in wrong]:
        sys.exit(f"--plot {path}: this model does not make the JSON's mistakes; give the model options of its command")
    png = path.with_suffix(".png")
    plot(tiles, wrong, title(mode, len(wrong), res["n"]), png)
    print(f"redrew {len(wrong)} mistakes: wrote {png}")


def title(mode: str, errors: int, n: int) -> str:
    return (f"ABS ({mode} mode): {errors} mistakes on the first {n} MNIST test images; "
            f"each: input | true class's reconstruction | chosen class's (confidence)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(ap)
    ap.add_argument("--mode", choices=sorted(MODES), default="faithful", help="ABS inference mode (default %(default)s)")
    ap.add_argument("--n", type=int, default=10000, help="first N test images (default %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--compare", type=Path, nargs="*", default=[], metavar="FILE",
                    help="other JSONs of this script or of bench/abs_speed.py: mistakes shared with each")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--plot", type=Path, metavar="FILE", help="redraw FILE's PNG from its mistakes, then stop")
    args = ap.parse_args()
    if args.n < 1:
        sys.exit(f"--n must be at least 1, got {args.n}")
    if args.threads < 1:
        sys.exit(f"--threads must be at least 1, got {args.threads}")
    if args.plot and (args.compare or args.n != ap.get_default("n") or args.mode != ap.get_default("mode")):
        sys.exit("--plot redraws a JSON with its own mode and images: give it without --compare, --n or --mode")
    others = {str(p): error_indices(p) for p in args.compare}       # read first: fail before the work
    earlier = earlier_run(args.plot) if args.plot else None
    torch.set_num_threads(args.threads)
    model, training = model_from_args(args)
    if earlier is not None:
        return redraw(model, earlier, args.plot)
    data = load_dataset("mnist")
    x, y = data.x_test[:args.n], data.y_test[:args.n]
    summary, wrong, tiles = mistakes(model.with_mode(args.mode), x, y)
    mine = {m["index"] for m in wrong}
    others = {p: {i for i in s if i < args.n} for p, s in others.items()}     # on the same images only
    compared = {p: {"their_errors": len(s), "shared": len(mine & s), "only_here": len(mine - s),
                    "only_there": len(s - mine)} for p, s in others.items()}
    res = {"command": "python " + " ".join(str(a) for a in sys.argv), "mode": args.mode,
           "threads": torch.get_num_threads(), "training": training, **summary,
           "pairs": [{"label": t, "pred": p, "count": c}
                     for (t, p), c in Counter((m["label"], m["pred"]) for m in wrong).most_common()],
           "compared": compared, "mistakes": wrong}
    write_json(args.out, res)
    png = args.out.with_suffix(".png")
    plot(tiles, wrong, title(args.mode, len(wrong), args.n), png)
    print(f"{args.mode}: {100 * summary['accuracy']:.2f}% on {args.n} test images, {len(wrong)} mistakes")
    print("most frequent label->pred: " + (", ".join(f"{r['label']}->{r['pred']} x{r['count']}"
                                                     for r in res["pairs"][:6]) or "none"))
    print("median confidence: " + ", ".join(f"{what} {summary[f'median_confidence_{what}']:.3f}"
                                            for what in ("correct", "mistakes")
                                            if summary[f"median_confidence_{what}"] is not None))
    for r in summary["confident_only"]:
        print(f"answering only at confidence >= {r['threshold']:g}: {100 * r['answered']:.1f}% answered, "
              f"mistakes among them: {r['mistakes_answered']}")
    for p, c in compared.items():
        print(f"vs {p}: {c['shared']} mistakes shared, {c['only_here']} only here, {c['only_there']} only there")
    print(f"wrote {args.out} and {png}")


if __name__ == "__main__":
    main()
