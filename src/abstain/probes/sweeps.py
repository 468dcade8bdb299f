"""Invariance sweeps: the same test images, changed a little more at each step.

For every step of every sweep, on the same n test images:

* ``accuracy``: share classified as their true label;
* ``confidence``: mean max-softmax of the classifier;
* ``abstain``: share the run's guard abstains on (its detector below its calibrated threshold);
* ``scores``: each scored detector's mean score (higher = more in-distribution) and its
  standard deviation over the images. By default (`sweep_detectors`) the scored detectors are the
  guard's own and every detector on the classifier's logits, features or layer activations (they
  share one forward pass); input-space detectors (VAE bounds, llr, abs, complexity, ...) cost up to ~100x more per
  image and are added only when asked for (``all_detectors=True``).

Per sweep, these summaries (on the steps as listed, every step weighted equally):

* ``overconfidence`` = mean over steps of (confidence - accuracy): the area between the two
  curves divided by the number of steps. The classifier alone; 0 = calibrated on average,
  > 0 = more sure than right.
* ``correlation`` = Pearson correlation between the guard's abstention rate and the classifier's
  error rate (1 - accuracy) along the sweep; None when either is constant.
* ``correlation_by`` = the same for every scored detector, as if it were the guard: each
  thresholded at the guard's acceptance rate on the validation images (``abstain_by`` per step),
  so a user can see which detector's abstention would track this classifier's errors. The
  guard's own entry equals ``correlation``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from ..errors import InputError
from ..metrics import threshold_at
from . import transforms as T
from .classifiers import probabilities


@dataclass(frozen=True)
class Sweep:
    name: str
    unit: str                     # what a step's value measures
    values: tuple                 # the steps, in plotting order
    identity: float               # the step that leaves images unchanged
    apply: Callable               # (uint8 images, value) -> uint8 images


SWEEPS: dict[str, Sweep] = {s.name: s for s in (
    Sweep("translate_x", "pixels (+ = right)", tuple(range(-8, 9, 2)), 0, lambda x, v: T.translate(x, dx=v)),
    Sweep("translate_y", "pixels (+ = down)", tuple(range(-8, 9, 2)), 0, lambda x, v: T.translate(x, dy=v)),
    Sweep("rotate", "degrees (counter-clockwise)", tuple(range(0, 181, 15)), 0, T.rotate),
    Sweep("scale", "zoom factor", (0.4, 0.55, 0.7, 0.85, 1.0, 1.2, 1.4, 1.7, 2.0), 1.0, T.scale),
    Sweep("thickness", "dilation (+) / erosion (-) steps", (-1, 0, 1, 2, 3), 0, T.thickness),
    Sweep("invert", "inversion blend (1 = 255 - x)", (0.0, 0.2, 0.4, 0.6, 0.8, 1.0), 0.0, T.invert),
    Sweep("noise", "Gaussian noise std (share of the range)", (0.0, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8), 0.0,
          T.noise),
)}


def overconfidence(confidence, accuracy) -> float:
    """Mean over steps of (mean max-softmax - accuracy)."""
    c, a = np.asarray(confidence, np.float64), np.asarray(accuracy, np.float64)
    return float(np.mean(c - a))


def pearson(a, b) -> float | None:
    """Pearson correlation of two equal-length sequences; None when either has no spread."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise InputError(f"pearson: sequences of lengths {len(a)} and {len(b)}")
    if len(a) < 2 or a.std() < 1e-12 or b.std() < 1e-12:
        return None
    da, db = a - a.mean(), b - b.mean()
    return float((da * db).sum() / np.sqrt((da ** 2).sum() * (db ** 2).sum()))


def sweep_detectors(guard, all_detectors: bool = False, classifier: str = "cnn") -> list[str]:
    """The guard's detector first, then the others scored along the sweeps (see the module doc):
    the parts of a combined guard (scored for it anyway) and, with the `abs` classifier, its
    `abs` detector too (prototype search: a quarter of the cost of the fast inference that
    classifies)."""
    wanted = set(getattr(guard.detectors[guard.detector], "parts", ()))
    wanted |= {"abs"} if classifier == "abs" else set()
    others = [n for n, d in guard.detectors.items()
              if n != guard.detector and (all_detectors or d.input != "images" or n in wanted)]
    return [guard.detector] + others


def detector_thresholds(guard, val_images: np.ndarray, detectors) -> dict[str, float]:
    """Each detector's threshold accepting the guard's share of the validation images (the
    guard's own detector keeps its calibrated threshold)."""
    scores, _ = guard.scores(val_images, list(detectors))
    out = {d: threshold_at(s, guard.accept) for d, s in scores.items()}
    out[guard.detector] = guard.threshold_
    return out


def step_stats(guard, images: np.ndarray, labels: np.ndarray, detectors=None, predict=None,
               thresholds: dict | None = None) -> dict:
    """Accuracy, mean confidence, abstention and per-detector score mean / std on one batch
    (`detectors`: the names to score, default `sweep_detectors(guard)`; `predict`: the judged
    classifier, see :mod:`.classifiers`, default the guard's CNN; `thresholds`: per-detector
    thresholds (`detector_thresholds`) for ``abstain_by``)."""
    scores, logits = guard.scores(images, detectors or sweep_detectors(guard))
    probs = probabilities(predict, images, logits)
    accepted = guard.decide(scores[guard.detector])
    out = {"accuracy": float(np.mean(probs.argmax(1) == labels)),
           "confidence": float(probs.max(1).mean()),
           "abstain": float(1 - accepted.mean()),
           "scores": {d: float(np.mean(s)) for d, s in scores.items()},
           "score_std": {d: float(np.std(s)) for d, s in scores.items()}}
    if thresholds:
        out["abstain_by"] = {d: float(np.mean(scores[d] < t)) for d, t in thresholds.items() if d in scores}
    return out


def sample_images(x: np.ndarray, y: np.ndarray, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n of the images x drawn without replacement with `seed` (indices sorted): (idx, x, y)."""
    n = min(int(n), len(x))
    idx = np.sort(np.random.default_rng(seed).choice(len(x), n, replace=False))
    return idx, x[idx], y[idx]


def sample_test(data, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n test images drawn without replacement with `seed` (indices sorted): (idx, x, y)."""
    return sample_images(data.x_test, data.y_test, n, seed)


def run_sweep(guard, sweep: Sweep, images: np.ndarray, labels: np.ndarray, detectors=None,
              bar=None, predict=None, thresholds: dict | None = None) -> dict:
    """Every step of one sweep on the same images, plus its overconfidence and correlation(s)."""
    steps = []
    for value in sweep.values:
        steps.append({"value": value, **step_stats(guard, sweep.apply(images, value), labels, detectors,
                                                   predict, thresholds)})
        if bar is not None:
            bar.update(1)
    acc = [s["accuracy"] for s in steps]
    conf = [s["confidence"] for s in steps]
    abst = [s["abstain"] for s in steps]
    err = 1 - np.asarray(acc)
    by = {d: pearson([s["abstain_by"][d] for s in steps], err) for d in (thresholds or {})}
    return {"unit": sweep.unit, "identity": sweep.identity, "steps": steps,
            "overconfidence": overconfidence(conf, acc),
            "correlation": pearson(abst, err),
            **({"correlation_by": by} if thresholds else {}),
            "min_accuracy": float(min(acc)),
            "confidence_at_min_accuracy": conf[int(np.argmin(acc))],
            "abstain_at_min_accuracy": abst[int(np.argmin(acc))]}


def run_sweeps(guard, images: np.ndarray, labels: np.ndarray, names=None, all_detectors: bool = False,
               progress: bool = False, predict=None, classifier: str = "cnn",
               val_images: np.ndarray | None = None) -> dict:
    """{sweep name: run_sweep(...)} for the named sweeps (default: all of SWEEPS); with
    `val_images`, also every scored detector's abstention and correlation (``abstain_by``,
    ``correlation_by``)."""
    names = list(SWEEPS) if names is None else list(names)
    unknown = [n for n in names if n not in SWEEPS]
    if unknown:
        raise InputError(f"unknown sweep(s) {unknown}; known: {', '.join(SWEEPS)}")
    total = sum(len(SWEEPS[n].values) for n in names)
    with tqdm(total=total, desc="sweeps", disable=not progress, leave=False) as bar:
        dets = sweep_detectors(guard, all_detectors, classifier)
        thresholds = None if val_images is None else detector_thresholds(guard, val_images, dets)
        return {n: run_sweep(guard, SWEEPS[n], images, labels, dets, bar, predict, thresholds) for n in names}
