"""The likelihood trap and its fixes (issue #4): fit (or reuse) a FashionMNIST run and an MNIST
run, write the table of `abstain likelihood`, the training cost of every model, and optionally
the llr background grid.

Usage: python bench/likelihood.py [--fashion-run DIR] [--mnist-run DIR] [--vae-likelihood L] [--grid]

The compressor of `complexity` is chosen the same way (PNG vs zlib on the same selection set).
--grid trains one background VAE per mutation rate mu (weight decay lambda as given) on the
FashionMNIST training images and picks mu by llr AUROC of FashionMNIST validation images against
`letters_mnistified` (thin MNIST-style strokes; not a column of the table, and not MNIST). MNIST
AUROCs of every grid point are written too, but only after the choice, and never used for it.
Prints and writes bench/results/likelihood.json (and likelihood_grid.json with --grid).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from abstain.data.datasets import load_dataset
from abstain.data.ood import make_ood
from abstain.data.sources import abstain_home
from abstain.detectors.vae import vae_statistics
from abstain.likelihood import likelihood_table
from abstain.metrics import auroc
from abstain.models.vae import ConvVAE
from abstain.run import RunConfig, fit_run
from abstain.summary import likelihood_overview
from abstain.train import train_vae

ROOT = Path(__file__).resolve().parents[1]
SELECTION_SET = "letters_mnistified"


def runs(args):
    base = RunConfig.for_dataset("fashion_mnist")
    fcfg = replace(base, vae=replace(base.vae, likelihood=args.vae_likelihood))
    fashion = fit_run(args.fashion_run, fcfg, progress=True)
    mnist = fit_run(args.mnist_run, RunConfig.for_dataset("mnist"), progress=True) if args.mnist_run else None
    return fashion, mnist


def training_cost(run) -> dict:
    return {name: {"seconds": info.get("seconds"), "threads": info.get("threads"),
                   "epochs_run": len(info.get("history", []))}
            for name, info in run.info.items() if isinstance(info, dict) and "history" in info}


def grid(fashion, mus, lambdas, epochs: int) -> dict:
    data = load_dataset("fashion_mnist")
    x_sel = make_ood(SELECTION_SET, n=2000, seed=1)
    x_val, x_mnist = data.x_val[:2000], load_dataset("mnist").x_test[:2000]
    fg = {k: vae_statistics(fashion.vae, x, 16, 0)["iwae"] for k, x in
          (("val", x_val), ("sel", x_sel), ("mnist", x_mnist))}
    points = []
    for mu in mus:
        for lam in lambdas:
            cfg = replace(fashion.config.background_train, epochs=epochs, weight_decay=lam)
            torch.manual_seed(cfg.seed)
            bg = ConvVAE(fashion.config.vae)
            t0 = time.perf_counter()
            train_vae(bg, data.x_train, data.x_val, cfg, progress=True, mutation=mu, what=f"background mu={mu}")
            secs = time.perf_counter() - t0
            llr = {k: fg[k] - vae_statistics(bg, x, 16, 0)["iwae"] for k, x in
                   (("val", x_val), ("sel", x_sel), ("mnist", x_mnist))}
            points.append({"mu": mu, "lambda": lam, "train_seconds": round(secs, 1),
                           "selection_auroc": auroc(llr["val"], llr["sel"]),
                           "mnist_auroc_not_used": auroc(llr["val"], llr["mnist"])})
            print(points[-1], flush=True)
    best = max(points, key=lambda p: p["selection_auroc"])
    return {"selection": f"FashionMNIST val vs {SELECTION_SET} (2,000 each), llr AUROC",
            "epochs": epochs, "points": points, "chosen": {"mu": best["mu"], "lambda": best["lambda"]}}


def compressor_selection(fashion) -> dict:
    """complexity with PNG and zlib: AUROC of FashionMNIST validation vs the selection set."""
    from abstain.detectors import make_detector
    x_val = load_dataset("fashion_mnist").x_val[:2000]
    x_sel = make_ood(SELECTION_SET, n=2000, seed=1)
    out = {}
    for comp in ("png", "zlib"):
        det = make_detector("complexity", vae=fashion.vae, compressor=comp).fit(x_val)
        out[comp] = auroc(det.score_samples(x_val), det.score_samples(x_sel))
    return {"selection": f"FashionMNIST val vs {SELECTION_SET} (2,000 each)", "auroc": out,
            "chosen": max(out, key=out.get)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    home = abstain_home() / "runs"
    ap.add_argument("--fashion-run", default=str(home / "fashion_mnist"))
    ap.add_argument("--mnist-run", default=str(home / "mnist"))
    ap.add_argument("--vae-likelihood", default="logistic", choices=["bernoulli", "logistic"])
    ap.add_argument("--grid", action="store_true")
    ap.add_argument("--mu", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    ap.add_argument("--lam", type=float, nargs="+", default=[0.0])
    ap.add_argument("--grid-epochs", type=int, default=4)
    args = ap.parse_args()
    os.environ.setdefault("ABSTAIN_NO_PROGRESS", "0")
    fashion, mnist = runs(args)
    out = ROOT / "bench" / "results"
    if args.grid:
        g = grid(fashion, args.mu, args.lam, args.grid_epochs)
        (out / "likelihood_grid.json").write_text(json.dumps(g, indent=2))
        print("grid chose", g["chosen"])
    selection = compressor_selection(fashion)
    print("compressor selection:", selection)
    t0 = time.perf_counter()
    result, _ = likelihood_table(fashion, mnist, progress=True)
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    result["training_cost"] = {"fashion_mnist": training_cost(fashion),
                               **({"mnist": training_cost(mnist)} if mnist else {})}
    result["compressor_selection"] = selection
    result["machine"] = {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    print(likelihood_overview(result))
    (out / "likelihood.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {out / 'likelihood.json'}")


if __name__ == "__main__":
    main()
