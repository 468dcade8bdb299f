"""The likelihood trap (seed 001) measured: a FashionMNIST run's VAE rates MNIST more likely than
its own test set, and the fixes (``llr``, ``complexity``, ``typicality``, ``dose``) are compared
with the raw bounds and the feature-space detectors in one table.

Rows are detectors; columns are FashionMNIST -> MNIST, letters, Gaussian and uniform noise and
natural crops (the FashionMNIST run), and MNIST -> FashionMNIST (an MNIST run), with AUROC and
FPR95 (the share of OOD images accepted at 95% in-distribution acceptance). No MNIST image is
used to fit or select anything in the FashionMNIST run: the columns are only scored.
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .evaluate import evaluate
from .metrics import auroc
from .run import Run

FASHION_COLUMNS = ["mnist", "letters", "gaussian_noise", "uniform_noise", "natural_crops"]
TYPICALITY_BATCHES = (1, 2, 5, 10, 25)


def bits_per_dim(iwae_nats: np.ndarray) -> np.ndarray:
    """-log p(x) in bits per pixel from a bound in nats per 28x28 image."""
    return -np.asarray(iwae_nats) / (784 * math.log(2))


def likelihood_table(fashion: Run, mnist: Run | None = None, limit: int | None = None,
                     progress: bool = False) -> tuple[dict, dict]:
    """(JSON-able result, {set name: SetScores} for plots) of the FashionMNIST run `fashion`,
    plus the MNIST -> FashionMNIST column from `mnist` when given."""
    if fashion.config.dataset != "fashion_mnist":
        raise InputError(f"{fashion.path} is a {fashion.config.dataset} run; pass a fashion_mnist run "
                         "(abstain fit --dataset fashion_mnist --run DIR)")
    if mnist is not None and mnist.config.dataset != "mnist":
        raise InputError(f"{mnist.path} is a {mnist.config.dataset} run, not an MNIST run")
    res, sets = evaluate(fashion, FASHION_COLUMNS, progress=progress, limit=limit)
    by_name = {s.name: s for s in sets}
    rows = _rows(res["results"], "fashion_mnist->")
    if mnist is not None:
        res_m, sets_m = evaluate(mnist, ["fashion_mnist"], progress=progress, limit=limit)
        for det, cells in _rows(res_m["results"], "mnist->").items():
            rows.setdefault(det, {}).update(cells)
        by_name["mnist_run_test"], by_name["mnist_run_fashion_mnist"] = sets_m[0], sets_m[1]
    test, out = by_name["test"], by_name["mnist"]
    result = {
        "fashion_run": str(fashion.path), "mnist_run": str(mnist.path) if mnist else None,
        "vae_likelihood": fashion.vae.config.likelihood,
        "classifier_accuracy": res["accuracy"],
        "columns": [*(f"fashion_mnist->{c}" for c in FASHION_COLUMNS), *(["mnist->fashion_mnist"] if mnist else [])],
        "table": rows,
        "bits_per_dim": _bits(test, out, fashion),
        "typicality_batches": _typicality_batches(fashion, test, out),
        "set_sizes": {k: int(len(v.images)) for k, v in by_name.items()},
    }
    return result, by_name


def _rows(results: list[dict], prefix: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for r in results:
        if r["kind"] in ("mistakes", "attack"):
            continue
        rows.setdefault(r["detector"], {})[prefix + r["ood"]] = {"auroc": r["auroc"], "fpr95": r["fpr95"]}
    return rows


def _bits(test, out, run: Run) -> dict:
    if "vae_iwae" not in test.scores:
        return {}
    b_in, b_out = bits_per_dim(test.scores["vae_iwae"]), bits_per_dim(out.scores["vae_iwae"])
    return {"fashion_mnist_test": float(b_in.mean()), "mnist_test": float(b_out.mean()),
            "bound": f"importance-weighted, k={run.guard.detectors['vae_iwae'].k}",
            "meaning": ("bits per pixel of the 8-bit image" if run.vae.config.likelihood == "logistic"
                        else "Bernoulli likelihood on grey levels: not a code length of the 8-bit image")}


def _typicality_batches(run: Run, test, out) -> dict:
    """AUROC of the batch typicality test, FashionMNIST test batches vs MNIST test batches."""
    det = run.guard.detectors.get("typicality")
    if det is None:
        return {}
    auc = {}
    for m in TYPICALITY_BATCHES:
        if len(test.images) // m < 2 or len(out.images) // m < 2:
            continue
        auc[str(m)] = auroc(det.score_batches(test.images, m), det.score_batches(out.images, m))
    return {"batch_sizes": list(auc), "auroc": auc,
            "note": "consecutive test images grouped; one score per group (mean NLL vs typical NLL)"}
