"""Fit and scoring speed of the feature-space detectors on real MNIST features, vs scikit-learn,
and `gmm` detection quality per K (FashionMNIST test as OOD; the test set's own mistakes).

Usage: python bench/gmm_speed.py [--run DIR] [--k 10 100 1000] [--sklearn]
Takes the penultimate features of the run's classifier on the 50,000 training images (or of a
freshly initialised CNN if no run is given: same shape, same cost), fits `gmm` (torch EM) with
K components, times scoring of the 10,000 test features, and optionally times scikit-learn's
GaussianMixture on the same data. Prints and writes bench/results/gmm_speed.json.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from abstain.data.datasets import load_dataset
from abstain.detectors.features import GMM, KNN, Mahalanobis
from abstain.metrics import auroc, fpr95, mann_whitney_p
from abstain.models.classifier import CNN
from abstain.views import compute_views

ROOT = Path(__file__).resolve().parents[1]


def features(run_dir: str | None):
    data = load_dataset("mnist")
    if run_dir:
        from abstain.run import load_run
        clf = load_run(run_dir).classifier
    else:
        torch.manual_seed(0)
        clf = CNN().eval()
    test = compute_views(clf, data.x_test)
    wrong = test["logits"].argmax(1) != data.y_test
    fashion = compute_views(clf, load_dataset("fashion_mnist").x_test)["features"]
    return compute_views(clf, data.x_train)["features"], data.y_train, test["features"], wrong, fashion


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(Path(os.environ.get("ABSTAIN_HOME", Path.home() / ".cache/abstain"))
                                         / "runs" / "mnist"))
    ap.add_argument("--k", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--sklearn", action="store_true", help="also time sklearn GaussianMixture (K=100)")
    args = ap.parse_args()
    run_dir = args.run if Path(args.run, "run.json").exists() else None
    f_train, y_train, f_test, wrong, f_fashion = features(run_dir)
    res = {"features": list(f_train.shape), "threads": torch.get_num_threads(), "run": run_dir, "gmm": {}}
    for k in args.k:
        det, fit_s = timed(lambda: GMM(n_components=k).fit(f_train))
        s_test, score_s = timed(lambda: det.score_samples(f_test))
        s_fashion = det.score_samples(f_fashion)
        res["gmm"][k] = {"fit_seconds": round(fit_s, 2), "em_iterations": det.n_iter_,
                         "score_per_second": round(len(f_test) / score_s),
                         "fashion_mnist": {"auroc": round(auroc(s_test, s_fashion), 4),
                                           "fpr95": round(fpr95(s_test, s_fashion), 4)},
                         "mistakes_auroc": round(auroc(s_test[~wrong], s_test[wrong]), 4),
                         "mistakes_mann_whitney_p": mann_whitney_p(s_test[~wrong], s_test[wrong])}
    for name, det in (("mahalanobis", Mahalanobis()), ("knn", KNN())):
        _, fit_s = timed(lambda: det.fit(f_train, y_train))
        _, score_s = timed(lambda: det.score_samples(f_test))
        res[name] = {"fit_seconds": round(fit_s, 2), "score_per_second": round(len(f_test) / score_s)}
    if args.sklearn:
        from sklearn.mixture import GaussianMixture
        ref, fit_s = timed(lambda: GaussianMixture(100, covariance_type="diag", random_state=0).fit(f_train))
        _, score_s = timed(lambda: ref.score_samples(f_test))
        res["sklearn_gmm_100"] = {"fit_seconds": round(fit_s, 2), "em_iterations": int(ref.n_iter_),
                                  "score_per_second": round(len(f_test) / score_s)}
    print(json.dumps(res, indent=2))
    out = ROOT / "bench" / "results" / "gmm_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
