"""Sweeps on the tiny real run: sensible figures, and the two summaries checked against numpy."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from abstain.errors import InputError
from abstain.probes import run_probes
from abstain.probes.sweeps import (SWEEPS, detector_thresholds, overconfidence, pearson, run_sweep, sample_test,
                                   sweep_detectors)
from abstain.train import accuracy


def test_overconfidence_and_pearson_against_numpy(rng):
    conf, acc = rng.uniform(0.5, 1, 13), rng.uniform(0, 1, 13)
    assert overconfidence(conf, acc) == pytest.approx(float(np.mean(conf) - np.mean(acc)), abs=1e-12)
    assert overconfidence([0.9, 0.95, 0.99], [0.9, 0.5, 0.1]) == pytest.approx((0 + 0.45 + 0.89) / 3)
    a, b = rng.normal(size=20), rng.normal(size=20)
    assert pearson(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-12)
    assert pearson(a, b) == pytest.approx(stats.pearsonr(a, b).statistic, abs=1e-12)
    assert pearson(a, 3 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)
    assert pearson([0.1, 0.1, 0.1], [0, 0.5, 1]) is None          # no spread: undefined, not 0
    assert pearson([1.0], [2.0]) is None
    with pytest.raises(InputError):
        pearson([1, 2, 3], [1, 2])


def _steps(result, name):
    return {s["value"]: s for s in result["sweeps"][name]["steps"]}


def test_identity_step_is_the_runs_test_accuracy(probe_result, probe_settings, tiny_run):
    _, x, y = sample_test(tiny_run.dataset, probe_settings["n"], probe_result["settings"]["seed"])
    acc = accuracy(tiny_run.classifier, x, y)
    for name in probe_settings["sweeps"]:
        ident = _steps(probe_result, name)[SWEEPS[name].identity]
        assert ident["accuracy"] == pytest.approx(acc, abs=1e-12), name
        assert ident["abstain"] < 0.15                       # the guard accepts ~95% of clean digits
        assert list(ident["scores"]) == sweep_detectors(tiny_run.guard) == probe_result["settings"]["sweep_detectors"]


def test_rotation_and_translation_hurt_and_the_guard_notices(probe_result, probe_settings):
    rot = _steps(probe_result, "rotate")
    assert rot[180]["accuracy"] < rot[0]["accuracy"] - 0.35   # far below (0, 1, 8 survive a half turn)
    assert rot[90]["accuracy"] < 0.4
    ab = {v: round(rot[v]["abstain"], 3) for v in SWEEPS["rotate"].values}
    assert rot[90]["abstain"] > 0.5, ab                      # the guard refuses most quarter turns
    assert rot[180]["abstain"] > rot[0]["abstain"] + 0.15, ab   # half turns less so (0, 1, 8 look upright)
    accs = [rot[v]["accuracy"] for v in SWEEPS["rotate"].values]
    assert accs[0] == max(accs) and all(a >= b - 0.05 for a, b in zip(accs[:7], accs[1:7]))   # falls to 90
    tx = _steps(probe_result, "translate_x")
    assert tx[8]["accuracy"] < tx[0]["accuracy"] - 0.3 and tx[-8]["accuracy"] < tx[0]["accuracy"] - 0.3
    assert tx[2]["accuracy"] > tx[0]["accuracy"] - 0.05       # trained with 1 px shifts: small moves are fine
    for name in probe_settings["sweeps"]:
        sw = probe_result["sweeps"][name]
        conf = [s["confidence"] for s in sw["steps"]]
        acc = [s["accuracy"] for s in sw["steps"]]
        abst = [s["abstain"] for s in sw["steps"]]
        assert sw["overconfidence"] == pytest.approx(np.mean(np.subtract(conf, acc)))
        assert sw["overconfidence"] > 0                        # the classifier is surer than right
        assert sw["correlation"] == pytest.approx(np.corrcoef(abst, 1 - np.array(acc))[0, 1])
        assert sw["correlation"] > 0.5
        for s in sw["steps"]:
            assert all(np.isfinite(v) for v in s["scores"].values())
    json.dumps(probe_result, allow_nan=False)                  # JSON-able as it is


def test_every_detector_is_judged_as_if_it_were_the_guard(probe_result, probe_settings, tiny_run):
    guard = tiny_run.guard
    for name in probe_settings["sweeps"]:
        sw = probe_result["sweeps"][name]
        assert list(sw["correlation_by"]) == probe_result["settings"]["sweep_detectors"]
        assert sw["correlation_by"][guard.detector] == pytest.approx(sw["correlation"])
        err = 1 - np.array([s["accuracy"] for s in sw["steps"]])
        for s in sw["steps"]:
            assert s["abstain_by"][guard.detector] == pytest.approx(s["abstain"], abs=1e-12)   # its own threshold
            assert all(0 <= v <= 1 for v in s["abstain_by"].values())
        for d, c in sw["correlation_by"].items():
            a = [s["abstain_by"][d] for s in sw["steps"]]
            assert c is None or c == pytest.approx(np.corrcoef(a, err)[0, 1]), d
    # every other detector is thresholded to accept the guard's share of the validation images
    th = detector_thresholds(guard, tiny_run.dataset.x_val, ["msp", "energy", guard.detector])
    scores, _ = guard.scores(tiny_run.dataset.x_val, ["msp", "energy"])
    for d in ("msp", "energy"):
        assert np.mean(scores[d] >= th[d]) == pytest.approx(guard.accept, abs=0.005), d
    assert th[guard.detector] == guard.threshold_


def test_every_sweep_runs_on_a_few_images(tiny_run, mnist):
    x, y = mnist.x_test[:20], mnist.y_test[:20]
    for sweep in SWEEPS.values():
        r = run_sweep(tiny_run.guard, sweep, x, y)
        assert [s["value"] for s in r["steps"]] == list(sweep.values)
        assert all(0 <= s["accuracy"] <= 1 and 0 <= s["abstain"] <= 1 and 0.1 <= s["confidence"] <= 1
                   for s in r["steps"]), sweep.name


def test_bad_settings_are_input_errors(tiny_run):
    with pytest.raises(InputError, match="unknown sweep"):
        run_probes(tiny_run, sweeps=["rotate", "wobble"])
    with pytest.raises(InputError, match="at least 1"):
        run_probes(tiny_run, n=0)


def test_sweep_detectors_default_and_all(tiny_run):
    guard = tiny_run.guard
    default, every = sweep_detectors(guard), sweep_detectors(guard, all_detectors=True)
    assert default[0] == every[0] == guard.detector
    assert set(every) == set(guard.detectors) and len(every) == len(guard.detectors)
    # input-space detectors only where the guard needs them (the default union's parts have none);
    # the ones that read the shared pass (logits, features, layers) always
    parts = set(guard.detectors[guard.detector].parts)
    assert [d for d in default[1:] if guard.detectors[d].input == "images"] == []
    assert parts <= set(default) and {"msp", "knn", "mahalanobis_layers", "mahalanobis_layers_centred"} <= set(default)
    assert "abs" in sweep_detectors(guard, classifier="abs") and "abs" not in default
    r = run_sweep(guard, SWEEPS["invert"], tiny_run.dataset.x_test[:10], tiny_run.dataset.y_test[:10], every)
    assert list(r["steps"][0]["scores"]) == every


def test_abs_classifier_is_judged_beside_the_same_guard(tiny_run, pair_config):
    """--classifier abs: accuracy and confidence come from ABS, the verdicts from the run's guard."""
    from dataclasses import replace

    from abstain.probes.classifiers import abs_probs
    # ABS judges the first 300 images of each 1-vs-7 test set (all of them take minutes)
    r = run_probes(tiny_run, n=30, sweeps=["rotate"], pair=replace(pair_config, limit=300), classifier="abs")
    cnn = run_probes(tiny_run, n=30, sweeps=["rotate"], pair=pair_config)
    assert r["classifier"] == "abs" and "abs" in r["settings"]["sweep_detectors"]
    ident = r["sweeps"]["rotate"]["steps"][0]
    x, y = tiny_run.dataset.x_test, tiny_run.dataset.y_test
    idx = np.sort(np.random.default_rng(0).choice(len(x), 30, replace=False))
    probs = abs_probs(tiny_run.models["abs"])(x[idx])
    assert ident["accuracy"] == pytest.approx(np.mean(probs.argmax(1) == y[idx]))
    assert ident["confidence"] == pytest.approx(probs.max(1).mean())
    for a, b in zip(r["sweeps"]["rotate"]["steps"], cnn["sweeps"]["rotate"]["steps"]):
        assert a["abstain"] == b["abstain"]                   # the same guard decides
    assert [s["verdict"] for s in r["shapes"]] == [s["verdict"] for s in cnn["shapes"]]
    pair = r["one_vs_seven"]
    assert pair["classifier"] == "abs" and pair["test_accuracy"] >= 0.95     # a two-class ABS, 1 epoch
    assert pair["test_1s_7s"]["n"] == pair["other_test_digits"]["n"] == 300
    assert pair["config"]["limit"] == 300
    assert all(abs(row["p1"] + row["p7"] - 1) < 1e-6 for row in pair["images"])
