"""Choose ABS's fast mode without test labels: the candidate that agrees most often with the
faithful mode on a proxy set, among those at least `--min-speedup` times as fast.

Usage: python bench/abs_fast_select.py [abs_speed.py's model options] [--n 1000] [--min-speedup 11] [--out FILE]
The model is the one bench/abs_speed.py trains (or loads from its cache) with the same options.
Proxy set: the first N validation images, each translated by a random offset of up to 2 pixels
in each direction (seeded); harder than the plain images, and not the test set (a model trained
with --with-val has seen these images, with shifts of up to 1 pixel). The faithful
mode and every candidate of `CANDIDATES` classify it in one process on 2 CPU threads (images per
second over whole batches, prototype caches built first). Prints and writes a JSON: per
candidate its agreement with the faithful mode, its images/s and its speed-up; the choice.
No label is read: the choice depends on the faithful mode's predictions only.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from abstain.atomic import write_json
from abstain.data.datasets import load_dataset
from abstain.models.abs import MODES, Inference
from abstain.tensors import to_tensor
from abstain.train import random_shift

sys.path.insert(0, str(Path(__file__).resolve().parent))
from abs_speed import ROOT, trained_abs  # noqa: E402  (a sibling bench script)

#: the fast mode of 2026-11-25 first; then candidates that spend more of the 10x budget on
#: steps or on refined classes
CANDIDATES = [MODES["fast"], Inference(8000, 13, 0.1, 3), Inference(8000, 15, 0.1, 2),
              Inference(8000, 20, 0.1, 2), Inference(8000, 10, 0.1, 4), Inference(8000, 14, 0.07, 3),
              Inference(8000, 20, 0.05, 2)]


def predict(model, inference: Inference, x: torch.Tensor) -> tuple[np.ndarray, float]:
    view = model.with_mode(inference)
    view.prototypes(inference.prototypes)
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = torch.cat([view(x[i:i + 500]) for i in range(0, len(x), 500)])
    return logits.argmax(1).numpy(), len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--beta", type=float, default=None)
    ap.add_argument("--patience", type=int, default=None)
    ap.add_argument("--with-val", action="store_true")
    ap.add_argument("--finetune", type=int, default=0)
    ap.add_argument("--finetune-weight", type=float, default=None)
    ap.add_argument("--n", type=int, default=1000, help="validation images in the proxy set")
    ap.add_argument("--min-speedup", type=float, default=11.0,
                    help="candidates slower than this multiple of the faithful mode's images/s are not chosen")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "abs_fast_select.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    model, _ = trained_abs(args.epochs, with_val=args.with_val, beta=args.beta, patience=args.patience,
                           finetune=args.finetune, finetune_weight=args.finetune_weight)
    model.eval()
    data = load_dataset("mnist")
    x = random_shift(to_tensor(data.x_val[:args.n]), 2, torch.Generator().manual_seed(0))
    faithful, faithful_speed = predict(model, MODES["faithful"], x)
    print(f"faithful: {faithful_speed:.1f} images/s", flush=True)
    rows = []
    for inference in CANDIDATES:
        pred, speed = predict(model, inference, x)
        rows.append({"inference": asdict(inference), "agreement": float((pred == faithful).mean()),
                     "images_per_second": round(speed, 1), "speedup": round(speed / faithful_speed, 1)})
        print(json.dumps(rows[-1]), flush=True)
    eligible = [r for r in rows if r["speedup"] >= args.min_speedup]
    choice = max(eligible, key=lambda r: (r["agreement"], r["images_per_second"])) if eligible else None
    result = {"command": "python " + " ".join(sys.argv), "proxy": f"first {args.n} validation images, "
              "random shifts of up to 2 px (seed 0)", "faithful_images_per_second": round(faithful_speed, 2),
              "min_speedup": args.min_speedup, "candidates": rows, "choice": choice}
    print(json.dumps({"choice": choice}, indent=2))
    write_json(args.out, result)


if __name__ == "__main__":
    main()
