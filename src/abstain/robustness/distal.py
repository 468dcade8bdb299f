"""Distal images: start from uniform noise and climb one class's log-softmax until the model is
sure (seed 004: noise for feed-forward nets, a recognisable digit for analysis by synthesis)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class DistalConfig:
    confidence: float = 0.9     # stop an image once the model gives its class this probability
    steps: int = 200            # gradient steps at most
    step_size: float = 0.01     # L-inf size of each signed gradient step
    seed: int = 0


def log_confidence(model, logits: torch.Tensor) -> torch.Tensor:
    if hasattr(model, "confidence"):
        return model.confidence(logits).clamp_min(1e-30).log()
    return F.log_softmax(logits, dim=1)


def distal_images(model, cfg: DistalConfig = DistalConfig(), classes: int = 10) -> dict:
    """One image per class, from the same seeded uniform noise. Each image moves by signed
    gradient steps on log p(class | x), kept in [0, 1], and stops once it reaches the confidence.
    p is the softmax of the logits, or the model's own `confidence(logits)` when it has one (ABS:
    its logits are minus per-pixel losses, whose plain softmax is near uniform).
    Returns images (C, 28, 28) float32, the confidence reached, steps taken, reached or not."""
    gen = torch.Generator().manual_seed(cfg.seed)
    x = torch.rand((1, 1, 28, 28), generator=gen).repeat(classes, 1, 1, 1)
    target = torch.arange(classes)
    steps = torch.zeros(classes, dtype=torch.long)
    for _ in range(cfg.steps):
        x.requires_grad_(True)
        logp = log_confidence(model, model(x))[target, target]
        active = logp.detach().exp() < cfg.confidence
        if not active.any():
            break
        grad = torch.autograd.grad(logp.sum(), x)[0]
        x = x.detach()
        x[active] = (x[active] + cfg.step_size * grad[active].sign()).clamp(0, 1)
        steps += active.long()
    x = x.detach()
    with torch.no_grad():
        conf = log_confidence(model, model(x))[target, target].exp()
    return {"images": x[:, 0].numpy().astype(np.float32), "confidence": conf.tolist(),
            "steps": steps.tolist(), "reached": (conf >= cfg.confidence).tolist()}
