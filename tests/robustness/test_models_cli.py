"""The model registry, adversarial training, distal images and the `robustness` command."""
import hashlib
import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from abstain.checkpoint import config_to_dict, weights_sha256
from abstain.cli import main
from abstain.errors import InputError
from abstain.models.classifier import CNN, ClassifierConfig
from abstain.robustness import AdversarialConfig, DistalConfig, distal_images, parse_models
from abstain.robustness.adversarial_training import FILE, TRAIN, adversarial_cnn, pgd_accuracy, train_adversarial
from abstain.robustness.decision import decision_search
from abstain.robustness.minimal import Minima, SearchBudget, predict
from abstain.tensors import to_tensor


class WithReconstructions(nn.Module):
    """The CNN, plus one fixed image per class (the class means) as its 'reconstructions'."""

    def __init__(self, model, means):
        super().__init__()
        self.model, self.means = model, means

    def forward(self, x):
        return self.model(x)

    def reconstructions(self, x):
        return self.means.expand(len(x), -1, -1, -1)


def test_parse_models(tiny_run, capsys):
    from dataclasses import replace
    assert parse_models(None, tiny_run) == ["cnn", "madry", "abs", "binary_abs"]
    assert parse_models("madry, cnn,cnn", tiny_run) == ["madry", "cnn"]
    with pytest.raises(InputError, match="unknown model"):
        parse_models("cnn,resnet", tiny_run)
    no_abs = replace(tiny_run, models={k: v for k, v in tiny_run.models.items() if k != "abs"})
    assert parse_models(None, no_abs) == ["cnn", "madry"]
    with pytest.raises(InputError, match="this run has no ABS model"):
        parse_models("cnn,binary_abs", no_abs)


def test_config_refuses_a_mode_attacks_cannot_run():
    from abstain.robustness.evaluate import RobustnessConfig
    assert RobustnessConfig(abs_mode="faithful").abs_mode == "faithful"
    for mode in ("checked", "search", "quick"):       # checked re-solves close calls; search only bounds
        with pytest.raises(InputError, match="abs_mode must be one of fast, faithful"):
            RobustnessConfig(abs_mode=mode)


def test_decision_search_walks_toward_reconstructions(tiny_run, mnist):
    x, y = to_tensor(mnist.x_test[:40]), torch.as_tensor(mnist.y_test[:40]).long()
    means = torch.stack([to_tensor(mnist.x_test[2000:4000][mnist.y_test[2000:4000] == c]).mean(0)
                         for c in range(10)], 1)[0].unsqueeze(0)          # (1, 10, 28, 28)
    model = WithReconstructions(tiny_run.classifier, means)
    pool = mnist.y_test[1000:1500] == 0                                 # the pool holds only zeros
    m = Minima(model, x, y)
    decision_search(m, to_tensor(mnist.x_test[1000:1500][pool]), torch.as_tensor(mnist.y_test[1000:1500][pool]).long(),
                    SearchBudget(line_targets=2))
    by = m.by["l2"]
    assert by.count("line_reconstruction") >= len(x) // 2, by
    done = torch.isfinite(m.size["l2"])
    assert (predict(model, m.adv["l2"][done]) != y[done]).all()


def test_adversarial_training_raises_pgd_accuracy(tiny_run, mnist):
    torch.manual_seed(0)
    model = CNN(ClassifierConfig())
    cfg = replace(TRAIN, epochs=2, max_train=3000)
    out = train_adversarial(model, mnist.x_train, mnist.y_train, mnist.x_val, mnist.y_val, cfg,
                            AdversarialConfig(eps=0.15, alpha=0.1875, val_n=200, val_steps=5))
    assert len(out["history"]) == 2 and out["val_accuracy"] > 0.8
    x, y = mnist.x_test[:200], mnist.y_test[:200]
    robust, plain = pgd_accuracy(model, x, y, 0.1, 10), pgd_accuracy(tiny_run.classifier, x, y, 0.1, 10)
    assert robust > plain + 0.1, (robust, plain)


def test_madry_checkpoint_is_reused_and_retrained_on_change(tiny_run):
    cfg, adv = replace(TRAIN, epochs=1, max_train=300), AdversarialConfig(val_n=50, val_steps=2)
    first = adversarial_cnn(tiny_run, cfg, adv)
    path = tiny_run.path / FILE
    stamp = path.stat().st_mtime_ns
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["adversarial"]["eps"] == 0.3 and "Wong" in meta["method"]
    again = adversarial_cnn(tiny_run, cfg, adv)
    assert path.stat().st_mtime_ns == stamp and not again.training
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values()))
    adversarial_cnn(tiny_run, cfg, replace(adv, eps=0.2))
    assert path.stat().st_mtime_ns != stamp
    os.remove(path)


def test_distal_images_reach_the_confidence(tiny_run):
    out = distal_images(tiny_run.classifier, DistalConfig(steps=100))
    assert out["images"].shape == (10, 28, 28) and 0 <= out["images"].min() and out["images"].max() <= 1
    assert all(out["reached"]) and min(out["confidence"]) >= 0.9 and max(out["steps"]) < 100
    probs = torch.softmax(tiny_run.classifier(torch.from_numpy(out["images"])[:, None]), 1)
    assert (probs.argmax(1) == torch.arange(10)).all()
    assert np.array_equal(out["images"], distal_images(tiny_run.classifier, DistalConfig(steps=100))["images"])


def test_cli_robustness_writes_the_schema(tiny_run, tmp_path, capsys):
    out, page = tmp_path / "rob.json", tmp_path / "rob.html"
    assert main(["robustness", "--run", str(tiny_run.path), "--models", "cnn", "--n", "20", "--steps", "3",
                 "--search-steps", "3", "--json", str(out), "--report", str(page)]) == 0
    r = json.loads(out.read_text())
    cnn = r["models"]["cnn"]
    for key in ("l2_median", "linf_median", "acc_l2_1.5", "acc_linf_0.3", "l2_curve", "linf_curve",
                "noise", "distal", "budget", "seconds", "clean_accuracy"):
        assert key in cnn, key
    assert r["settings"]["n"] == 20 and r["settings"]["fast"]["steps"] == 3 and cnn["budget"]["steps"] == 3
    assert r["settings"]["abs_mode"] == "fast"
    assert r["settings"]["abs_inference"] == {"prototypes": 8000, "steps": 10, "lr": 0.1, "refine": 3,
                                               "check_margin": 0.0, "check": None}
    assert len(cnn["l2_minimal"]) == 20 and cnn["l2_median"] is not None and cnn["l2_median"] < 6
    # the result names the checkpoint it attacked: file, hash of its bytes, configs
    weights = tiny_run.path / "classifier.safetensors"
    assert cnn["checkpoint"]["file"] == "classifier.safetensors"
    assert cnn["checkpoint"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert cnn["checkpoint"]["config"] == config_to_dict(tiny_run.config.classifier)
    assert "training" not in cnn["checkpoint"]
    printed, html = capsys.readouterr().out, page.read_text()
    assert "cnn" in printed and html.count("<img") >= 5
    assert cnn["checkpoint"]["weights_sha256"] == weights_sha256(weights)
    label = f"classifier.safetensors sha256 {cnn['checkpoint']['sha256'][:12]} weights {weights_sha256(weights)[:12]}"
    assert f"cnn {label}" in printed and label in html


@pytest.mark.parametrize("args, message", [(["--models", "cnn,resnet"], "unknown model"),
                                           (["--n", "0"], "at least 1")])
def test_cli_robustness_bad_input_fails_in_one_line(tiny_run, tmp_path, capsys, args, message):
    out = tmp_path / "rob.json"
    assert main(["robustness", "--run", str(tiny_run.path), *args, "--json", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not out.exists()
