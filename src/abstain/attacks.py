"""White-box evasion attacks for any torch classifier (x in [0, 1] -> logits), batched and seeded.

FGSM (Goodfellow et al. 2015), BIM (Kurakin et al. 2017; `bim_l2`: the same in the L2 ball), PGD
with a random start in the L-infinity ball and PGD in the L2 ball (Madry et al. 2018). All are
untargeted: they raise the cross-entropy of the true label and keep x_adv in [0, 1] and within eps
of x. `attack_batch` also takes one eps per image (the minimal-norm searches in
`abstain.robustness` bisect on it). The loss is the cross-entropy, or with `loss="margin"` the
largest other logit minus the true one (Carlini & Wagner 2017), which ignores the logits' scale.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import InputError
from .tensors import as_images, to_tensor

ATTACKS = ("fgsm", "bim", "bim_l2", "pgd", "pgd_l2")
LOSSES = ("ce", "margin")


@dataclass(frozen=True)
class AttackConfig:
    name: str = "pgd"
    eps: float = 0.3
    steps: int = 40                 # bim / pgd / pgd_l2
    step_size: float | None = None  # default 2.5 * eps / steps
    restarts: int = 1               # pgd / pgd_l2: keep, per image, the first restart that fools
    seed: int = 0
    batch_size: int = 500
    loss: str = "ce"                # or "margin"

    def __post_init__(self):
        if self.name not in ATTACKS:
            raise InputError(f"unknown attack {self.name!r}; known: {', '.join(ATTACKS)}")
        if not self.eps > 0:
            raise InputError(f"attack eps must be positive, got {self.eps}")
        if self.loss not in LOSSES:
            raise InputError(f"unknown attack loss {self.loss!r}; known: {', '.join(LOSSES)}")
        if self.steps < 1 or self.restarts < 1:
            raise InputError("attack steps and restarts must be at least 1")
        if self.seed < 0 or self.batch_size < 1:
            raise InputError(f"attack seed must be >= 0 and batch size >= 1, got {self.seed} and {self.batch_size}")


def margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per image: the largest logit of another class minus the true class's (> 0 = fooled)."""
    true = logits.gather(1, y[:, None])[:, 0]
    return logits.scatter(1, y[:, None], -torch.inf).amax(1) - true


def loss_gradient(model, x, y, loss: str = "ce") -> torch.Tensor:
    """Gradient with respect to the input `x` of the summed loss ("ce" or "margin") of labels `y`."""
    x = x.detach().requires_grad_(True)
    logits = model(x)
    value = F.cross_entropy(logits, y, reduction="sum") if loss == "ce" else margin(logits, y).sum()
    return torch.autograd.grad(value, x)[0]


def _l2_normalise(g: torch.Tensor) -> torch.Tensor:
    return g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)


def _project(x_adv, x, eps, norm: str) -> torch.Tensor:
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        n = delta.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        delta = delta * torch.clamp(eps / n.clamp_min(1e-12), max=1.0)
    return (x + delta).clamp(0, 1)


def _iterate(model, x, y, cfg: AttackConfig, norm: str, start: torch.Tensor, eps) -> torch.Tensor:
    step = cfg.step_size or 2.5 * eps / cfg.steps
    x_adv = start
    for _ in range(cfg.steps):
        g = loss_gradient(model, x_adv, y, cfg.loss)
        direction = g.sign() if norm == "linf" else _l2_normalise(g)
        x_adv = _project(x_adv + step * direction, x, eps, norm)
    return x_adv.detach()


def _random_start(x, eps, norm: str, gen: torch.Generator) -> torch.Tensor:
    if norm == "linf":
        noise = (torch.rand(x.shape, generator=gen) * 2 - 1) * eps
    else:
        d = torch.randn(x.shape, generator=gen)
        r = torch.rand((len(x), 1, 1, 1), generator=gen) ** (1 / x[0].numel())
        noise = _l2_normalise(d) * r * eps
    return (x + noise.to(x)).clamp(0, 1)


def attack_batch(model: Callable, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig,
                 gen: torch.Generator, eps: torch.Tensor | None = None) -> torch.Tensor:
    """One batch x (N, 1, 28, 28); `eps` (N,), when given, replaces cfg.eps image by image."""
    eps = cfg.eps if eps is None else eps.to(x).view(-1, 1, 1, 1)
    if cfg.name == "fgsm":
        return (x + eps * loss_gradient(model, x, y, cfg.loss).sign()).clamp(0, 1).detach()
    norm = "l2" if cfg.name.endswith("_l2") else "linf"
    if cfg.name.startswith("bim"):
        return _iterate(model, x, y, cfg, norm, x.clone(), eps)
    best, fooled = None, None
    for _ in range(cfg.restarts):
        adv = _iterate(model, x, y, cfg, norm, _random_start(x, eps, norm, gen), eps)
        with torch.no_grad():
            now = model(adv).argmax(1) != y
        if best is None:
            best, fooled = adv, now
        else:                                    # keep the first restart that fools each image
            take = now & ~fooled
            best[take] = adv[take]
            fooled |= now
    return best


def attack(model: torch.nn.Module, images, labels, cfg: AttackConfig, progress: bool = False) -> np.ndarray:
    """Adversarial versions of `images` (N, 28, 28) as float32 in [0, 1]."""
    images = as_images(images, "attack input")
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise InputError(f"labels: expected {len(images)} integer labels, got shape {labels.shape} {labels.dtype}")
    model.eval()
    with torch.no_grad():
        n_classes = model(to_tensor(images[:1])).shape[1]
    if labels.min() < 0 or labels.max() >= n_classes:
        raise InputError(f"labels: must lie in 0..{n_classes - 1} (the model's classes), "
                         f"got {labels.min()}..{labels.max()}")
    gen = torch.Generator().manual_seed(cfg.seed)
    out = []
    for i in tqdm(range(0, len(images), cfg.batch_size), desc=f"{cfg.name} eps={cfg.eps:g}",
                  disable=not progress, leave=False):
        x = to_tensor(images[i:i + cfg.batch_size])
        y = torch.as_tensor(labels[i:i + cfg.batch_size], dtype=torch.long)
        out.append(attack_batch(model, x, y, cfg, gen)[:, 0].numpy())
    return np.concatenate(out).astype(np.float32)


@torch.no_grad()
def predict(model: torch.nn.Module, images, batch_size: int = 1000) -> np.ndarray:
    images = as_images(images)
    return np.concatenate([model(to_tensor(images[i:i + batch_size])).argmax(1).numpy()
                           for i in range(0, len(images), batch_size)])
