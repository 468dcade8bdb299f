"""Training the ten per-class VAEs of an ABS model: each sees only its own class."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .models.abs import ABS, Inference
from .tensors import to_tensor
from .train import TrainConfig, _fit, augment


def _by_class(y: np.ndarray, classes: int) -> list[np.ndarray]:
    rows = [np.flatnonzero(y == c) for c in range(classes)]
    if any(len(r) == 0 for r in rows):
        missing = [c for c, r in enumerate(rows) if len(r) == 0]
        raise ValueError(f"ABS needs training images of every class; none for {missing}")
    return rows


@torch.no_grad()
def mean_abs_loss(model: ABS, x: np.ndarray, y: np.ndarray, seed: int = 0, batch_size: int = 1000) -> float:
    """Mean over classes of each class VAE's loss (squared error + beta KL) on its own images;
    the posterior noise is fixed by `seed`, so the number is deterministic."""
    model.eval()
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        per_class = []
        for c, rows in enumerate(_by_class(y, model.config.classes)):
            vae = model.vaes[c]
            total = sum(vae.loss(to_tensor(x[rows[i:i + batch_size]]), model.config.beta).sum().item()
                        for i in range(0, len(rows), batch_size))
            per_class.append(total / len(rows))
    return float(np.mean(per_class))


def train_abs(model: ABS, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
              cfg: TrainConfig = TrainConfig(), progress: bool = False) -> dict:
    """Every class VAE minimises squared error + beta * KL on batches of its own class
    (`cfg.batch_size` images each, shifted by up to `cfg.shift` pixels, distorted with probability
    `cfg.distort`). One epoch passes over
    the largest class once; smaller classes are spread over the same number of batches.
    Keeps the weights with the lowest validation loss; then, if the model's
    `scale_fit_images` > 0, fits its class scales on that many validation images
    (:func:`fit_class_scales`)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = (x[:cfg.max_train], y[:cfg.max_train]) if cfg.max_train else (x, y)
    rows = _by_class(y, model.config.classes)
    n = max(len(r) for r in rows)

    def step(idx):
        losses = []
        for vae, r in zip(model.vaes, rows):
            xb = augment(to_tensor(x[r[(idx * len(r)) // n]]), cfg, gen)
            losses.append(vae.loss(xb, model.config.beta).mean())
        return torch.stack(losses).sum()

    result = _fit(model, n, step, lambda: -mean_abs_loss(model, x_val, y_val, cfg.seed), cfg, progress,
                  "ABS VAEs", "val_neg_loss")
    if model.config.scale_fit_images > 0:
        result["class_scales"] = fit_class_scales(model, x_val, y_val, max_images=model.config.scale_fit_images)
    return result


def fit_class_scales(model: ABS, x: np.ndarray, y: np.ndarray, mode: str | Inference = "fast",
                     max_images: int = 2000) -> dict:
    """The reference's discriminative finetuning (Schott et al. 2019): one scale a_y per class
    such that softmax(-s a_y l_y(x)), s the confidence scale (440), fits the labels of the first
    `max_images` of x: cross-entropy minimised by L-BFGS over log a with its mean held at 0
    (geometric mean 1, so s and the confidence offset keep the reference's meaning; accuracy
    does not depend on a common factor). The class losses l come from `mode` inference.
    Sets ``model.class_scale``; returns the scales and the accuracy on those images before and
    after."""
    x, y = x[:max_images], np.asarray(y[:max_images])
    if len(x) == 0:
        raise ValueError("fit_class_scales: no images")
    model.eval()
    with torch.no_grad():
        model.class_scale.fill_(1.0)
        losses = model.with_mode(mode).class_losses(to_tensor(x)).double()
    target = torch.from_numpy(y).long()
    log_a = torch.zeros(model.config.classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_a], max_iter=200, line_search_fn="strong_wolfe")

    def scales():
        return (log_a - log_a.mean()).exp()

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(-model.config.confidence_scale * scales() * losses, target)
        loss.backward()
        return loss
    opt.step(closure)
    a = scales().detach()
    with torch.no_grad():
        model.class_scale.copy_(a.to(model.class_scale))
    return {"scales": [round(float(v), 4) for v in a], "images": len(x), "mode": str(mode),
            "accuracy_before": float(((-losses).argmax(1) == target).double().mean()),
            "accuracy_after": float(((-a * losses).argmax(1) == target).double().mean())}
