"""The probes on a FashionMNIST classifier: the 1-vs-7 experiment is skipped with a note, the
sweeps and the shapes still run, and the report says why (a small real classifier and guard)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from abstain.detectors import make_detector
from abstain.guard import Guard
from abstain.models.classifier import CNN, ClassifierConfig
from abstain.probes import format_summary, run_probes
from abstain.report.probes import build_probe_report
from abstain.train import TrainConfig, train_classifier
from abstain.views import compute_views


@pytest.fixture(scope="module")
def fashion_run(fashion, tmp_path_factory):
    torch.manual_seed(0)
    clf = CNN(ClassifierConfig())
    cfg = TrainConfig(epochs=1, max_train=3000, shift=0)
    train_classifier(clf, fashion.x_train, fashion.y_train, fashion.x_val[:1000], fashion.y_val[:1000], cfg)
    x, y = fashion.x_train[:3000], fashion.y_train[:3000]
    dets = {"mahalanobis_layers": make_detector("mahalanobis_layers", classifier=clf).fit(x, y),
            "msp": make_detector("msp").fit(compute_views(clf, x)["logits"])}
    guard = Guard(clf, dets, "mahalanobis_layers", 0.95, fashion.class_names).calibrate(fashion.x_val[:1000])
    return SimpleNamespace(path=tmp_path_factory.mktemp("fashion_run"), config=SimpleNamespace(dataset="fashion_mnist"),
                           dataset=fashion, classifier=clf, guard=guard)


def test_probes_on_a_fashion_run(fashion_run, tmp_path):
    r = run_probes(fashion_run, n=60, sweeps=["invert", "rotate"])
    assert "skipped" in r["one_vs_seven"] and "fashion_mnist" in r["one_vs_seven"]["skipped"]
    assert not (fashion_run.path / "probes").exists()                 # nothing trained for 1-vs-7
    rot = {s["value"]: s for s in r["sweeps"]["rotate"]["steps"]}
    assert rot[0]["accuracy"] > 0.6 and rot[90]["accuracy"] < rot[0]["accuracy"] - 0.2
    assert np.isclose(r["sweeps"]["invert"]["steps"][0]["confidence"], rot[0]["confidence"])   # same images
    assert {s["class"] for s in r["shapes"]} <= set(fashion_run.guard.class_names)
    assert "1-vs-7: skipped" in format_summary(r)
    text = build_probe_report(r, tmp_path / "fashion.html").read_text(encoding="utf-8")
    assert "skipped" in text and "fashion_mnist" in text and '<section id="probes">' in text
