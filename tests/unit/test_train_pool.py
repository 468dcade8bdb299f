"""Training side by side: the plan of workers and threads, and that a worker trains a model
exactly as this process does with the same number of threads."""
from dataclasses import replace

import pytest
import torch

from abstain.data.datasets import load_dataset
from abstain.run import RunConfig, train_models
from abstain.run_models import model_checkpoint
from abstain.train import TrainConfig
from abstain.train_pool import order, plan, train_side_by_side


@pytest.mark.parametrize("models, workers, cpus, expected", [
    (4, None, 2, (1, 2)),      # the 2-core machine: one model after another, both threads
    (4, None, 3, (1, 3)),
    (4, None, 4, (2, 2)),      # two workers of two threads
    (4, None, 8, (4, 2)),      # every model at once
    (4, None, 16, (4, 4)),     # more cores than models need: shared out
    (1, None, 8, (1, 8)),      # one model: trained in this process
    (0, None, 2, (1, 2)),      # nothing to train
    (4, 1, 8, (1, 8)),         # --workers 1: one after another, every core
    (4, 2, 2, (2, 1)),         # --workers 2 on 2 cores: one thread each
    (4, 3, 2, (3, 1)),         # more workers than cores: still one thread each
    (2, 3, 8, (2, 4)),         # never more workers than models
])
def test_plan(models, workers, cpus, expected):
    assert plan(models, workers, cpus) == expected


def test_plan_rejects_no_workers():
    with pytest.raises(ValueError, match="at least 1"):
        plan(4, 0, 2)


def test_order_puts_the_longest_training_first():
    assert order(["vae_background", "vae", "abs", "classifier"]) == ["classifier", "abs", "vae", "vae_background"]
    assert order(["new_model", "vae"]) == ["vae", "new_model"]


@pytest.fixture(scope="module")
def small_config():
    short = TrainConfig(epochs=1, max_train=300, max_val=500, lr=3e-3, shift=1)
    return replace(RunConfig(), classifier_train=short, vae_train=replace(short, shift=0))


def test_workers_train_what_one_process_trains_with_their_threads(tmp_path, small_config):
    data = load_dataset("mnist")
    train_side_by_side(tmp_path / "pool", ["vae", "classifier"], small_config, False, workers=2, threads=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for name in ("classifier", "vae"):
            mine, summary = model_checkpoint(tmp_path / "here", name, small_config, data, False)
            theirs, their_summary = model_checkpoint(tmp_path / "pool", name, small_config, data, False)
            assert their_summary["threads"] == summary["threads"] == 1
            assert their_summary["history"] == summary["history"]
            a, b = mine.state_dict(), theirs.state_dict()
            assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name
    finally:
        torch.set_num_threads(before)


def test_train_models_reports_how_it_trained_and_reuses(tmp_path, small_config):
    data = load_dataset("mnist")
    cfg = replace(small_config, abs_train=replace(small_config.abs_train, epochs=1, max_train=300, max_val=500),
                  background_train=replace(small_config.background_train, epochs=1, max_train=300, max_val=500))
    models, summary = train_models(tmp_path, cfg, data, workers=2)
    assert summary["training"]["workers"] == 2 and summary["training"]["threads"] >= 1
    assert set(summary["training"]["models"]) == set(cfg.models_needed()) == set(models)
    assert all(summary[m]["threads"] == summary["training"]["threads"] for m in models)
    again, summary2 = train_models(tmp_path, cfg, data, workers=2)
    assert "training" not in summary2            # every checkpoint reused, nothing trained
    for m in models:
        a, b = models[m].state_dict(), again[m].state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_workers_error_reaches_the_caller_as_itself(tmp_path, small_config):
    from abstain.errors import InputError
    cfg = replace(small_config, abs_train=replace(small_config.abs_train, max_train=5, max_val=500))
    with pytest.raises(InputError, match="every class"):     # the first 5 labels miss classes
        train_side_by_side(tmp_path, ["abs"], cfg, False, workers=2, threads=1)
    assert not (tmp_path / "abs.safetensors").exists()
