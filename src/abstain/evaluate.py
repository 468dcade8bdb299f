"""Evaluate a run: accuracy, calibration, and every detector against every failure source:
OOD sets, the classifier's own test-set mistakes and (optionally) adversarial inputs."""
from __future__ import annotations

import logging

import numpy as np
from scipy.special import softmax
from tqdm.auto import tqdm

from .data.datasets import load_dataset
from .data.ood import OOD_SETS, make_ood
from .errors import InputError
from .failures import attack_sets, mistakes_set
from .metrics import all_metrics, confidence_table, ece, mann_whitney_p
from .run import Run
from .scoring import SetScores, score_set

log = logging.getLogger(__name__)

OTHER_DATASET = {"mnist": "fashion_mnist", "fashion_mnist": "mnist"}


def suite_names(dataset: str) -> list[str]:
    """The OOD suite of a run: the other MNIST-family dataset, then the generated sets."""
    return [OTHER_DATASET[dataset], *OOD_SETS]


def load_set(name: str, run: Run) -> tuple[np.ndarray, str]:
    data = run.dataset
    if name in OTHER_DATASET:
        if name == run.config.dataset:
            raise InputError(f"{name} is this run's own dataset, not an OOD set")
        return load_dataset(name).x_test, "dataset"
    if name not in OOD_SETS:
        raise InputError(f"unknown OOD set {name!r}; known: {', '.join(suite_names(run.config.dataset))}")
    spec = OOD_SETS[name]
    return make_ood(name, seed=0, base=data.x_test), spec.kind


def evaluate(run: Run, ood: list[str] | None = None, progress: bool = False,
             limit: int | None = None, attacks: int = 0, attack_steps: int = 20) -> tuple[dict, list[SetScores]]:
    """Returns the JSON-able result and the per-set scores (for plots): the test set first,
    then each OOD set, then the failure sources (kind "mistakes" / "attack", see SetScores.partner).

    `limit` keeps only the first N images of every set (quick looks and tests); `attacks`
    attacks that many correctly classified test images with every attack of the grid."""
    if limit is not None and limit < 1:
        raise InputError(f"limit must be a positive number of images, got {limit}")
    if attacks < 0:
        raise InputError(f"attacks is a number of test images to attack (0 = none), got {attacks}")
    if attacks and attack_steps < 1:
        raise InputError(f"attack steps must be at least 1, got {attack_steps}")
    data = run.dataset
    cut = slice(None, limit)
    names = suite_names(run.config.dataset) if not ood else ood
    for name in names:                       # unknown names fail before any scoring
        if name not in OTHER_DATASET and name not in OOD_SETS:
            raise InputError(f"unknown OOD set {name!r}; known: {', '.join(suite_names(run.config.dataset))}")
    bar = tqdm(["test", *names], desc="scoring", disable=not progress, leave=False)
    sets = []
    for name in bar:
        bar.set_postfix(set=name)
        if name == "test":
            sets.append(score_set(run, "test", data.x_test[cut], "in"))
        else:
            images, kind = load_set(name, run)
            sets.append(score_set(run, name, images[cut], kind))
    failures = [mistakes_set(sets[0], data.y_test[cut])]
    if attacks:
        failures += attack_sets(run, sets[0], data.y_test[cut], n=attacks, steps=attack_steps, progress=progress)
    result = summarise(run, sets, failures, data.y_test[cut])
    if attacks:
        result["attacks"] = {"n_attacked": attacks, "steps": attack_steps,
                             "success_rate": {a.name: a.info["success_rate"] for a in failures[1:]}}
    return result, sets + failures


def result_rows(run: Run, test: SetScores, failure: SetScores) -> list[dict]:
    """One row per detector: the metrics of test images against one OOD set or failure source."""
    s_in, s_out = failure.roc_pair(test)
    rows = []
    for det in run.guard.detectors:
        if len(s_in[det]) == 0 or len(s_out[det]) == 0:
            continue
        m = all_metrics(s_in[det], s_out[det])
        m["mann_whitney_p"] = mann_whitney_p(s_in[det], s_out[det])
        rows.append({"detector": det, "ood": failure.name, "kind": failure.kind, **m, **failure.info})
    return rows


def guard_parts(guard) -> dict:
    """{"parts": {part: share}} when the guard's detector combines others (input "scores", as
    `union`), else {}."""
    det = guard.detectors[guard.detector]
    if det.input != "scores":
        return {}
    return {"parts": {p: float(share) for p, share in zip(det.parts, det.shares)}}


def summarise(run: Run, sets: list[SetScores], failures: list[SetScores], y_test: np.ndarray) -> dict:
    """`sets`: the test set, then OOD sets (confidence table, acceptance); `failures`: the rest."""
    test = sets[0]
    probs = softmax(test.logits.astype(np.float64), axis=1)
    guard = run.guard
    results = [row for s in sets[1:] + failures for row in result_rows(run, test, s)]
    failed = {f.name: f.roc_pair(test)[1] for f in failures}   # the rows that count (attacks that fooled)
    return {
        "dataset": run.config.dataset,
        "accuracy": float((probs.argmax(1) == y_test).mean()),
        "ece": ece(probs, y_test),
        "temperature": float(getattr(guard.detectors.get("temperature"), "temperature_", float("nan"))),
        "confidence_table": {s.name: confidence_table(s.max_softmax) for s in sets},
        "guard": {"detector": guard.detector, "threshold": guard.threshold_, "target_accept": guard.accept,
                  **guard_parts(guard),
                  "accepted": {s.name: float(guard.decide(s.scores[guard.detector]).mean()) for s in sets},
                  # the share of the test mistakes / successful adversarial images it lets through
                  "accepted_failures": {f: float(guard.decide(fail[guard.detector]).mean())
                                        for f, fail in failed.items() if len(fail[guard.detector])}},
        "set_sizes": {**{s.name: int(len(s.images)) for s in sets},
                      **{f: int(len(fail[guard.detector])) for f, fail in failed.items()}},
        "set_kinds": {s.name: s.kind for s in sets + failures},
        "results": results,
    }
