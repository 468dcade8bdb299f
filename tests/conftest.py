"""Shared fixtures: a small real run (real MNIST, a few thousand images, short training)."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ABSTAIN_NO_PROGRESS", "1")

TINY_TRAIN = 5000
TINY_VAL = 2000         # validation images each training epoch is judged on (the guard still calibrates on all)


@pytest.fixture(scope="session")
def mnist():
    from abstain.data.datasets import load_dataset
    return load_dataset("mnist")


@pytest.fixture(scope="session")
def fashion():
    from abstain.data.datasets import load_dataset
    return load_dataset("fashion_mnist")


@pytest.fixture(scope="session")
def tiny_config():
    from abstain.run import RunConfig
    from abstain.train import TrainConfig
    return RunConfig(
        classifier_train=TrainConfig(epochs=3, max_train=TINY_TRAIN, max_val=TINY_VAL, lr=3e-3, shift=1),
        vae_train=TrainConfig(epochs=4, max_train=TINY_TRAIN, max_val=TINY_VAL, lr=3e-3, shift=0),
        background_train=TrainConfig(epochs=2, max_train=TINY_TRAIN, max_val=TINY_VAL, lr=3e-3, shift=0),
        abs_train=TrainConfig(epochs=3, max_train=TINY_TRAIN, max_val=TINY_VAL, lr=3e-3, shift=1, batch_size=32))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_config):
    """A real MNIST run fitted on the first 5,000 training images (about a minute on 2 cores)."""
    from abstain.run import fit_run
    return fit_run(tmp_path_factory.mktemp("runs") / "tiny", tiny_config)


@pytest.fixture(scope="session")
def tiny_fashion_run(tmp_path_factory, tiny_config):
    """A real FashionMNIST run on its first 5,000 training images."""
    from dataclasses import replace

    from abstain.run import fit_run
    return fit_run(tmp_path_factory.mktemp("runs") / "tiny_fashion", replace(tiny_config, dataset="fashion_mnist"))


@pytest.fixture(scope="session")
def tiny_eval(tiny_run):
    from abstain.evaluate import evaluate
    return evaluate(tiny_run, ["fashion_mnist", "uniform_noise", "letters"], limit=1000)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)
