"""Training a run's models one after another in one process against side by side in worker
processes (abstain.train_pool), on real MNIST, same configs, same machine, one run.

Usage: python bench/train_pool_speed.py [--max-train N] [--epochs 1] [--workers 1 2]
Trains the MNIST run's four models (classifier, VAE, background VAE, ABS: `make demo`'s
configs, with `--epochs` epochs each, on all 50,000 training images or the first
`--max-train`) into a fresh folder once per `--workers` value (1 = in this process with all
its torch threads), and prints and writes the wall time of each and the speed-up over the
first to bench/results/train_pool_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from abstain.data.datasets import load_dataset
from abstain.run import RunConfig, train_models
from abstain.train_pool import available_cpus

ROOT = Path(__file__).resolve().parents[1]


def config(max_train: int | None, epochs: int) -> RunConfig:
    base = RunConfig.for_dataset("mnist")
    short = {"epochs": epochs, "max_train": max_train}
    return replace(base, classifier_train=replace(base.classifier_train, **short),
                   vae_train=replace(base.vae_train, **short),
                   background_train=replace(base.background_train, **short),
                   abs_train=replace(base.abs_train, **short))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-train", type=int, default=None)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "train_pool_speed.json")
    args = ap.parse_args()
    cfg, data = config(args.max_train, args.epochs), load_dataset("mnist")
    rows = []
    for workers in args.workers:
        with tempfile.TemporaryDirectory(prefix="abstain-pool-") as tmp:
            t = time.perf_counter()
            _, summary = train_models(Path(tmp), cfg, data, workers=workers)
            wall = time.perf_counter() - t
        per_model = {m: summary[m]["seconds"] for m in summary["training"]["models"]}
        rows.append({"workers": summary["training"]["workers"], "threads": summary["training"]["threads"],
                     "wall_seconds": round(wall, 1), "model_seconds": per_model})
        print(f"workers {rows[-1]['workers']} x {rows[-1]['threads']} threads: {wall:.1f} s "
              f"(each model's own training: {per_model})", flush=True)
    for r in rows:
        r["speedup"] = round(rows[0]["wall_seconds"] / r["wall_seconds"], 3)
    out = {"max_train": args.max_train, "epochs": args.epochs, "cpus": available_cpus(),
           "torch_threads": torch.get_num_threads(), "machine": platform.machine(),
           "python": platform.python_version(), "runs": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=2) + "\n")
    os.replace(tmp, args.out)
    print(json.dumps({r["workers"]: r["speedup"] for r in rows}), f"-> {args.out}")


if __name__ == "__main__":
    main()
