"""Probes: what does the network really look for? (the shortcut-learning seed, 003)

Three probes, each with the guard's verdict beside the classifier's confidence:

* ``one_vs_seven``: a binary 1-vs-7 net and its own guard on bars, dashes and shifted 1s
  (MNIST runs only);
* ``sweeps``: test digits translated, rotated, scaled, thickened / thinned, inverted, noised,
  step by step (see :mod:`abstain.probes.sweeps` for what each number means);
* ``shapes``: bars, crosses, boxes, circles and letters drawn procedurally.

``run_probes(run)`` returns one JSON-able dict; ``format_summary`` turns it into text.
"""
from __future__ import annotations

import time

from .. import __version__
from ..errors import InputError
from .classifiers import CLASSIFIERS, probe_classifier
from .one_vs_seven import PairConfig, run_one_vs_seven
from .shapes import make_shapes
from .summary import format_summary
from .sweeps import SWEEPS, run_sweeps, sample_test, sweep_detectors

__all__ = ["run_probes", "probe_shapes", "format_summary", "SWEEPS", "PairConfig", "CLASSIFIERS"]

DEFAULT_N = 1000        # test digits per sweep step


def probe_shapes(guard, predict=None) -> list[dict]:
    """Class, confidence (max probability of the judged classifier, see :mod:`.classifiers`),
    verdict and guard score for every shape of make_shapes()."""
    names, images = make_shapes()
    verdicts = guard.check(images)
    probs = None if predict is None else predict(images)
    rows = []
    for i, (name, v) in enumerate(zip(names, verdicts)):
        cls, conf = (v.class_name, v.confidence) if probs is None else \
            (guard.class_names[int(probs[i].argmax())], float(probs[i].max()))
        rows.append({"name": name, "class": cls, "confidence": conf, "verdict": v.verdict,
                     "score": v.scores[guard.detector]})
    return rows


def run_probes(run, n: int = DEFAULT_N, seed: int = 0, sweeps=None, pair: PairConfig = PairConfig(),
               all_detectors: bool = False, progress: bool = False, classifier: str = "cnn") -> dict:
    """All three probes on a loaded run. `n` test digits (drawn with `seed`) go through every
    sweep step; `sweeps` names a subset of SWEEPS; `pair` sets the 1-vs-7 training;
    `all_detectors` also scores the input-space detectors along the sweeps (slow); `classifier`
    ("cnn" or "abs") is the classifier judged, beside the run's guard."""
    if n < 1:
        raise InputError(f"probe: n must be at least 1, got {n}")
    unknown = [s for s in (sweeps or []) if s not in SWEEPS]
    if unknown:
        raise InputError(f"unknown sweep(s) {', '.join(unknown)}; known: {', '.join(SWEEPS)}")
    predict = probe_classifier(run, classifier)
    t0 = time.perf_counter()
    data = run.dataset
    idx, x, y = sample_test(data, n, seed)
    timings = {}
    one_vs_seven = run_one_vs_seven(run, pair, progress, classifier)
    timings["one_vs_seven_s"] = time.perf_counter() - t0
    sweep_results = run_sweeps(run.guard, x, y, sweeps, all_detectors, progress, predict, classifier,
                               val_images=data.x_val)
    timings["sweeps_s"] = time.perf_counter() - t0 - timings["one_vs_seven_s"]
    shapes = probe_shapes(run.guard, predict)
    timings["total_s"] = time.perf_counter() - t0
    return {"abstain_version": __version__, "run": str(run.path), "dataset": run.config.dataset,
            "class_names": list(run.guard.class_names), "classifier": classifier,
            "guard": {"detector": run.guard.detector, "threshold": run.guard.threshold_,
                      "accept": run.guard.accept, "detectors": list(run.guard.detectors)},
            "settings": {"n": int(len(idx)), "seed": seed,
                         "sweep_detectors": sweep_detectors(run.guard, all_detectors, classifier)},
            "one_vs_seven": one_vs_seven, "sweeps": sweep_results, "shapes": shapes,
            "timings": {k: round(v, 1) for k, v in timings.items()}}
