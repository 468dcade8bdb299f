"""The adversarially trained baseline ("madry"): the run's CNN architecture trained on FGSM
examples with a random start (Wong, Rice & Kolter 2020, "Fast is better than free").

Madry et al.'s PGD training (40 steps per batch) is too slow on a CPU; Wong et al. showed that
one FGSM step from a uniform random start in the eps ball, with step alpha = 1.25 eps, reaches
similar PGD robustness. Their MNIST settings: eps 0.3, alpha 0.375. FGSM training can collapse
("catastrophic overfitting": PGD accuracy falls to ~0 within an epoch), so after every epoch the
PGD accuracy on a validation slice is measured and the weights best by it are kept.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from ..attacks import AttackConfig, attack, loss_gradient, predict
from ..checkpoint import load_or_train
from ..models.classifier import CNN
from ..tensors import to_tensor
from ..train import TrainConfig, _fit, augment

log = logging.getLogger(__name__)

FILE = "madry.safetensors"


@dataclass(frozen=True)
class AdversarialConfig:
    eps: float = 0.3            # L-infinity training budget
    alpha: float = 0.375        # FGSM step from the random start (1.25 eps, Wong et al. 2020)
    ramp: float = 0.0           # share of training steps over which eps grows linearly from 0
    val_n: int = 500            # validation images the PGD accuracy is measured on
    val_steps: int = 10         # PGD steps of that check (eps = the training eps, 1 restart)


#: 5 epochs on the 50,000 training images: a few minutes on 2 CPU cores
TRAIN = TrainConfig(epochs=5, batch_size=100, lr=5e-3, shift=0, patience=5)


def fgsm_example(model, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
                 gen: torch.Generator) -> torch.Tensor:
    """One FGSM step of size alpha from a uniform random point of the eps ball, projected back."""
    delta = (torch.rand(x.shape, generator=gen) * 2 - 1).to(x) * eps
    start = (x + delta).clamp(0, 1)
    g = loss_gradient(model, start, y)
    return (x + (start + alpha * g.sign() - x).clamp(-eps, eps)).clamp(0, 1).detach()


def pgd_accuracy(model, x: np.ndarray, y: np.ndarray, eps: float, steps: int, seed: int = 0) -> float:
    adv = attack(model, x, y, AttackConfig(name="pgd", eps=eps, steps=steps, seed=seed))
    return float(np.mean(predict(model, adv) == y))


def train_adversarial(model: CNN, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                      cfg: TrainConfig = TRAIN, adv: AdversarialConfig = AdversarialConfig(),
                      progress: bool = False) -> dict:
    """Train on FGSM-with-random-start examples only; keep the weights best by validation PGD accuracy."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = (x[:cfg.max_train], y[:cfg.max_train]) if cfg.max_train else (x, y)
    x_val, y_val = x_val[:adv.val_n], y_val[:adv.val_n]
    total = cfg.epochs * -(-len(x) // cfg.batch_size)
    done = [0]

    def step(idx):
        xb, yb = augment(to_tensor(x[idx]), cfg, gen), torch.from_numpy(y[idx]).long()
        scale = min(1.0, done[0] / (adv.ramp * total)) if adv.ramp > 0 else 1.0
        done[0] += 1
        xa = fgsm_example(model, xb, yb, adv.eps * scale, adv.alpha * scale, gen)
        return F.cross_entropy(model(xa), yb)

    def validate():
        return pgd_accuracy(model, x_val, y_val, adv.eps, adv.val_steps, cfg.seed)

    out = _fit(model, len(x), step, validate, cfg, progress, "adversarial CNN", "val_pgd_accuracy")
    out["val_accuracy"] = float(np.mean(predict(model, x_val) == y_val))
    return out


def adversarial_cnn(run, cfg: TrainConfig | None = None, adv: AdversarialConfig = AdversarialConfig(),
                    progress: bool = False) -> CNN:
    """The run's adversarially trained CNN: loaded from RUN/madry.safetensors when it was trained
    with these settings by this version, else trained (same architecture as the run's
    classifier, as many training images as it) and saved there."""
    cfg = cfg or replace(TRAIN, max_train=run.config.classifier_train.max_train)

    def train(model):
        data = run.dataset
        result = train_adversarial(model, data.x_train, data.y_train, data.x_val, data.y_val, cfg, adv, progress)
        log.info("adversarial CNN: validation PGD accuracy %.3f", result["val_pgd_accuracy"])
        return result
    model, _ = load_or_train(run.path / FILE, CNN, run.config.classifier, {"train": cfg, "adversarial": adv}, train,
                             want={"dataset": run.config.dataset},
                             meta={"method": "FGSM with random start (Wong, Rice & Kolter 2020)"})
    return model
