"""How a run trains, keys and stores each of its models (MODELS), and the checkpoint helpers that
reuse a model trained with the same configs or train and save it."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from .checkpoint import config_to_dict, load_or_train, matches
from .data.datasets import Dataset
from .models.abs import ABS
from .models.classifier import CNN
from .models.vae import ConvVAE
from .train import TrainConfig, train_classifier, train_vae
from .train_abs import train_abs

if TYPE_CHECKING:
    from .run_config import RunConfig


@dataclass(frozen=True)
class ModelSpec:
    """How a run trains, keys and stores one of its models."""

    file: str
    module: type
    config: Callable[[RunConfig], object]                  # the model's config
    train_config: Callable[[RunConfig], TrainConfig]
    train: Callable[[torch.nn.Module, Dataset, RunConfig, bool], dict]
    meta: Callable[[RunConfig, Dataset], dict] = lambda cfg, data: {}    # stored, not compared
    key: Callable[[RunConfig], dict] = lambda cfg: {}                    # compared on reuse


MODELS: dict[str, ModelSpec] = {
    "classifier": ModelSpec(
        "classifier.safetensors", CNN, lambda c: c.classifier, lambda c: c.classifier_train,
        lambda m, d, c, p: train_classifier(m, d.x_train, d.y_train, d.x_val, d.y_val, c.classifier_train, p),
        meta=lambda c, d: {"normalisation": {"mean": c.classifier.mean, "std": c.classifier.std},
                           "class_names": d.class_names}),
    "vae": ModelSpec(
        "vae.safetensors", ConvVAE, lambda c: c.vae, lambda c: c.vae_train,
        lambda m, d, c, p: train_vae(m, d.x_train, d.x_val, c.vae_train, p),
        meta=lambda c, d: {"likelihood": c.vae.likelihood}),
    "vae_background": ModelSpec(
        "vae_background.safetensors", ConvVAE, lambda c: c.vae, lambda c: c.background_train,
        lambda m, d, c, p: train_vae(m, d.x_train, d.x_val, c.background_train, p,
                                     mutation=c.background.mutation, what="background VAE"),
        meta=lambda c, d: {"likelihood": c.vae.likelihood,
                           "trained_on": "training images with pixels replaced by uniform noise"},
        key=lambda c: {"background": config_to_dict(c.background)}),
    "abs": ModelSpec(
        "abs.safetensors", ABS, lambda c: c.abs, lambda c: c.abs_train,
        # abs_training_images already cut the training split to max_train (before adding the
        # validation images, which train_abs's own cut would drop)
        lambda m, d, c, p: train_abs(m, *abs_training_images(d, c), d.x_val, d.y_val,
                                     replace(c.abs_train, max_train=None), p),
        meta=lambda c, d: {"class_names": d.class_names,
                           "model": "ten per-class VAEs, analysis by synthesis (abstain.models.abs)"},
        # as bench/abs_speed.py's cached models say it: absent for the training split alone
        key=lambda c: {"train_images": c.abs_train_images} if c.abs_train_images != "train" else {}),
}


def abs_training_images(data: Dataset, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels ABS trains on: the first `abs_train.max_train` training images
    (all without it), then, with `abs_train_images` "train+val", every validation image."""
    n = config.abs_train.max_train
    x, y = data.x_train[:n], data.y_train[:n]
    if config.abs_train_images == "train+val":
        return np.concatenate([x, data.x_val]), np.concatenate([y, data.y_val])
    return x, y


def checkpoint_args(folder: Path, name: str, config: RunConfig) -> dict:
    """What identifies model `name`'s checkpoint in `folder`: its path, module, model config,
    training config and the plain values compared on reuse."""
    spec = MODELS[name]
    return {"path": folder / spec.file, "module_cls": spec.module, "model_cfg": spec.config(config),
            "configs": {"train": spec.train_config(config)}, "want": {"dataset": config.dataset, **spec.key(config)}}


def stale(folder: Path, name: str, config: RunConfig) -> bool:
    """Would fitting `config` into `folder` train model `name` (no checkpoint with its configs)?"""
    a = checkpoint_args(folder, name, config)
    return not matches(a["path"], a["want"], {"config": a["model_cfg"], **a["configs"]})


def model_checkpoint(folder: Path, name: str, config: RunConfig, data: Dataset, progress: bool):
    """Reuse the model checkpoint in `folder` if it was trained with the same configs; else train
    and save it. Returns (model, training summary)."""
    spec = MODELS[name]
    return load_or_train(**checkpoint_args(folder, name, config), meta=spec.meta(config, data),
                         train=lambda m: spec.train(m, data, config, progress))
