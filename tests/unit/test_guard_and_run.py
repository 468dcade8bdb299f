import json

import numpy as np
import pytest

from abstain.checkpoint import load_module, save_module
from abstain.errors import NotFittedError, RunError
from abstain.guard import Guard
from abstain.models.classifier import CNN, ClassifierConfig
from abstain.run import load_run


def test_tiny_run_learns_real_numbers(tiny_run, tiny_eval):
    result, _ = tiny_eval
    assert result["accuracy"] > 0.95                     # 5,000 images, 3 epochs
    row = {(r["detector"], r["ood"]): r for r in result["results"]}
    assert row[("vae_elbo", "fashion_mnist")]["auroc"] > 0.95
    assert row[("vae_elbo", "uniform_noise")]["auroc"] > 0.999
    # the seed's point: p(x) separates digits from clothes better than the classifier's confidence
    assert row[("vae_elbo", "fashion_mnist")]["auroc"] > row[("msp", "fashion_mnist")]["auroc"]


def test_detectors_fit_on_the_runs_max_train_images(tiny_run, tiny_config, mnist):
    from abstain.views import compute_views
    n = tiny_config.classifier_train.max_train
    dets = tiny_run.guard.detectors
    assert dets["knn"].bank_.shape[0] == n                   # its bank: the first n training images
    feats = compute_views(tiny_run.classifier, mnist.x_train[:n])[dets["mahalanobis"].input]
    means = np.stack([feats[mnist.y_train[:n] == c].mean(0) for c in range(10)])
    np.testing.assert_allclose(dets["mahalanobis"].class_means_, means, rtol=1e-5, atol=1e-6)


def test_too_few_max_train_images_for_a_detector_says_so(tiny_run, mnist):
    from dataclasses import replace

    from abstain.errors import InputError
    from abstain.run import fit_guard
    cfg = tiny_run.config
    cfg = replace(cfg, classifier_train=replace(cfg.classifier_train, max_train=60))
    with pytest.raises(InputError, match=r"first 60 training images: raise --max-train"):
        fit_guard(tiny_run.models, mnist, cfg)                  # gmm's 100 components need 100


def test_guard_accepts_target_share_of_validation(tiny_run, mnist):
    scores, _ = tiny_run.guard.scores(mnist.x_val, [tiny_run.guard.detector])
    accepted = tiny_run.guard.decide(scores[tiny_run.guard.detector]).mean()
    assert 0.95 <= accepted <= 0.951


def test_check_fields(tiny_run, mnist):
    verdicts = tiny_run.guard.check(mnist.x_test[:3])
    logits = tiny_run.classifier(__import__("abstain.tensors", fromlist=["x"]).to_tensor(mnist.x_test[:3]))
    assert [v.label for v in verdicts] == logits.argmax(1).tolist()
    for v in verdicts:
        assert v.verdict in ("accept", "abstain") and 0.1 <= v.confidence <= 1.0
        assert set(v.scores) == set(tiny_run.guard.detectors)
        assert tiny_run.guard.detector in v.reason


def test_uncalibrated_guard_refuses(tiny_run):
    g = Guard(tiny_run.classifier, tiny_run.guard.detectors, "msp")
    with pytest.raises(NotFittedError):
        g.decide(np.zeros(3))


def test_run_roundtrip_gives_identical_scores(tiny_run, mnist):
    again = load_run(tiny_run.path)
    x = mnist.x_test[:50]
    a, _ = tiny_run.guard.scores(x)
    b, _ = again.guard.scores(x)
    for name in a:
        assert np.allclose(a[name], b[name]), name
    assert again.guard.threshold_ == tiny_run.guard.threshold_


def test_run_from_another_version_is_refused(tiny_run, tmp_path):
    import shutil
    copy = tmp_path / "old"
    shutil.copytree(tiny_run.path, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["abstain_version"] = "0.0.1"
    (copy / "run.json").write_text(json.dumps(meta))
    with pytest.raises(RunError, match="refit"):
        load_run(copy)
    with pytest.raises(RunError, match="no run.json"):
        load_run(tmp_path / "absent")


def test_corrupt_guard_file_is_run_error(tiny_run, tmp_path):
    import shutil
    copy = tmp_path / "run"
    shutil.copytree(tiny_run.path, copy)
    (copy / "detectors.safetensors").write_bytes(b"\x00" * 50)
    with pytest.raises(RunError, match="corrupt"):
        load_run(copy)


def test_checkpoint_roundtrip_and_metadata(tmp_path):
    model = CNN(ClassifierConfig(hidden=32))
    save_module(tmp_path / "m.safetensors", model, {"class_names": list("abcdefghij")})
    loaded, meta = load_module(tmp_path / "m.safetensors", CNN, ClassifierConfig)
    assert meta["config"]["hidden"] == 32 and meta["class_names"][0] == "a"
    assert json.loads((tmp_path / "m.json").read_text())["config"]["hidden"] == 32
    for k, v in model.state_dict().items():
        assert (loaded.state_dict()[k] == v).all()
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_checkpoint_is_run_error(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(RunError, match="not an abstain checkpoint"):
        load_module(tmp_path / "m.safetensors", CNN, ClassifierConfig)


def test_cnn_features_then_head_is_forward(mnist):
    import torch
    from abstain.tensors import to_tensor
    model = CNN().eval()
    x = to_tensor(mnist.x_test[:4])
    f = model.forward_features(x)
    assert f.shape == (4, model.config.hidden)
    assert torch.allclose(model.forward_head(f), model(x))


def test_training_is_seeded_whatever_ran_before(tmp_path, mnist):
    """Same config -> identical weights, even if something drew random numbers first."""
    import torch
    from abstain.run import RunConfig
    from abstain.run_models import model_checkpoint
    from abstain.train import TrainConfig
    cfg = RunConfig(classifier_train=TrainConfig(epochs=1, max_train=1000, max_val=2000))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, _ = model_checkpoint(tmp_path / "a", "classifier", cfg, mnist, False)
    torch.rand(7)
    b, _ = model_checkpoint(tmp_path / "b", "classifier", cfg, mnist, False)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k


def test_force_deletes_only_what_looks_like_a_run(tmp_path, tiny_run):
    from abstain.run import _looks_like_run
    assert _looks_like_run(tiny_run.path)
    partial = tmp_path / "partial"               # interrupted before its run.json was written
    (partial / "scores").mkdir(parents=True)
    for name in ("classifier.safetensors", "classifier.json", ".vae.safetensors.x1.tmp"):
        (partial / name).write_bytes(b"")
    assert _looks_like_run(partial)
    (partial / "notes.txt").write_text("mine")
    assert not _looks_like_run(partial)
    (partial / "run.json").write_text('{"abstain_version": "0"}')
    assert _looks_like_run(partial)
    (partial / "run.json").write_text('{"name": "someone else\'s run.json"}')
    assert not _looks_like_run(partial)
