"""`abstain fit`'s options for ABS's training recipe (docs/abs.md "Finetuning at the
product's inference"): what reaches the run's config, the images ABS trains on, and what a change retrains."""
import json
from dataclasses import replace

import numpy as np
import pytest

from abstain import run as run_module
from abstain.cli import main
from abstain.errors import InputError
from abstain.run import RunConfig
from abstain.run_models import abs_training_images, stale


class Fitted(Exception):
    """Raised by the stand-in for fit_run: carries the config `abstain fit` built."""


@pytest.fixture
def fit_config(monkeypatch, tmp_path):
    def fake_fit_run(folder, config, **kw):
        raise Fitted(config)
    monkeypatch.setattr(run_module, "fit_run", fake_fit_run)

    def parse(*flags):
        with pytest.raises(Fitted) as got:
            main(["fit", "--dataset", "mnist", "--run", str(tmp_path / "r"), *flags])
        return got.value.args[0]
    return parse


def test_the_best_recipe_reaches_the_run_config(fit_config):
    cfg = fit_config("--abs-epochs", "100", "--abs-beta", "0.25", "--abs-patience", "100", "--abs-with-val",
                     "--abs-finetune", "1000", "--abs-finetune-weight", "10", "--abs-finetune-mode", "fast",
                     "--abs-seed", "1")
    assert (cfg.abs.beta, cfg.abs.finetune_steps, cfg.abs.finetune_weight, cfg.abs.finetune_mode) == (0.25, 1000, 10.0, "fast")
    assert (cfg.abs_train.epochs, cfg.abs_train.patience, cfg.abs_train.seed) == (100, 100, 1)
    assert cfg.abs_train_images == "train+val"
    assert cfg.classifier_train.seed == 0 and cfg.vae_train.seed == 0       # --abs-seed is ABS's alone
    # and it survives run.json's round trip
    assert RunConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg


def test_defaults_keep_the_run_as_before(fit_config):
    cfg = fit_config()
    base = RunConfig.for_dataset("mnist")
    assert cfg.abs == base.abs and cfg.abs_train == base.abs_train and cfg.abs_train_images == "train"
    assert fit_config("--seed", "3").abs_train.seed == 3                  # --abs-seed defaults to --seed


def test_abs_trains_on_validation_images_only_when_asked(mnist):
    cfg = replace(RunConfig(), abs_train=replace(RunConfig().abs_train, max_train=300))
    x, y = abs_training_images(mnist, cfg)
    assert len(x) == 300 and np.array_equal(x, mnist.x_train[:300])
    x, y = abs_training_images(mnist, replace(cfg, abs_train_images="train+val"))
    assert len(x) == 300 + len(mnist.x_val) == 10_300
    assert np.array_equal(x[300:], mnist.x_val) and np.array_equal(y[300:], mnist.y_val)
    assert np.array_equal(y[:300], mnist.y_train[:300])
    with pytest.raises(InputError, match="abs_train_images"):
        RunConfig(abs_train_images="test")


def test_changing_the_recipe_retrains_abs_alone(tiny_run):
    cfg = tiny_run.config
    assert not any(stale(tiny_run.path, name, cfg) for name in cfg.models_needed())
    for changed in (replace(cfg, abs_train_images="train+val"),
                    replace(cfg, abs=replace(cfg.abs, finetune_steps=5, finetune_mode="fast")),
                    replace(cfg, abs_train=replace(cfg.abs_train, patience=100))):
        assert [n for n in cfg.models_needed() if stale(tiny_run.path, n, changed)] == ["abs"]
