"""Fit and scoring speed of the feature-space detectors on real MNIST features, vs scikit-learn.

Usage: python bench/gmm_speed.py [--run DIR] [--k 100] [--sklearn]
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

import numpy as np
import torch

from abstain.data.datasets import load_dataset
from abstain.detectors.features import GMM, KNN, Mahalanobis
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
    return (compute_views(clf, data.x_train)["features"], data.y_train,
            compute_views(clf, data.x_test)["features"])


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(Path(os.environ.get("ABSTAIN_HOME", Path.home() / ".cache/abstain"))
                                         / "runs" / "mnist"))
    ap.add_argument("--k", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--sklearn", action="store_true", help="also time sklearn GaussianMixture (K=100)")
    args = ap.parse_args()
    run_dir = args.run if Path(args.run, "run.json").exists() else None
    f_train, y_train, f_test = features(run_dir)
    res = {"features": list(f_train.shape), "threads": torch.get_num_threads(), "run": run_dir, "gmm": {}}
    for k in args.k:
        det, fit_s = timed(lambda: GMM(n_components=k).fit(f_train))
        _, score_s = timed(lambda: det.score_samples(f_test))
        res["gmm"][k] = {"fit_seconds": round(fit_s, 2), "em_iterations": det.n_iter_,
                         "score_per_second": round(len(f_test) / score_s)}
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
