"""Training the ten per-class VAEs of an ABS model: each sees only its own class."""
from __future__ import annotations

import logging
import time
from dataclasses import asdict

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import InputError
from .models.abs import ABS, PIXELS
from .models.abs_modes import MODES, Inference
from .tensors import to_tensor
from . import train as _train
from .train import TrainConfig, _fit, augment

log = logging.getLogger(__name__)


def _by_class(y: np.ndarray, classes: int) -> list[np.ndarray]:
    rows = [np.flatnonzero(y == c) for c in range(classes)]
    if any(len(r) == 0 for r in rows):
        missing = [c for c, r in enumerate(rows) if len(r) == 0]
        raise InputError(f"ABS needs training images of every class; none for {missing}")
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
    Keeps the weights with the lowest validation loss; then, if the model's `finetune_steps`
    > 0, finetunes the decoders on the same training images (:func:`finetune_decoders`); then,
    if its `scale_fit_images` > 0, fits its class scales on that many validation images
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

    # convolution weights channels-last while training: the same computation in another memory
    # layout (results differ in the last bits), 1.23x faster per step on a 2-core CPU for these ten
    # small VAEs, where the CNN and the VAE gain 1.04x and 1.02x and keep the default layout
    # (bench/train_layout_speed.py); back to the default layout afterwards, as the rest expects.
    # Models trained before 2026-12-03 (no "layout" in their summary) used the default layout.
    model.to(memory_format=torch.channels_last)
    try:
        xv, yv = x_val[:cfg.max_val], y_val[:cfg.max_val]
        result = _fit(model, n, step, lambda: -mean_abs_loss(model, xv, yv, cfg.seed), cfg, progress,
                      "ABS VAEs", "val_neg_loss")
    finally:
        model.to(memory_format=torch.contiguous_format)
    result["layout"] = "channels_last"
    if model.config.finetune_steps > 0:
        result["finetune"] = finetune_decoders(model, x, y, cfg.seed, progress)
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


#: finetuning's batches, its inference (fast mode with 1,000 prototypes) and how often (steps) the
#: prototypes are decoded afresh; in between they are searched as decoded a few steps earlier and
#: the Adam steps on z, from the current decoders, make up for the difference
FINETUNE_BATCH = 100
FINETUNE_INFERENCE = Inference(1000, 10, 0.05, 3)
FINETUNE_REFRESH = 10


def finetune_inference(config) -> Inference:
    """The inference that finds z* in the finetuning of a model with ABSConfig `config`: its
    `finetune_mode`'s, or FINETUNE_INFERENCE when that is None."""
    return FINETUNE_INFERENCE if config.finetune_mode is None else MODES[config.finetune_mode]


def finetune_decoders(model: ABS, x: np.ndarray, y: np.ndarray, seed: int = 0, progress: bool = False) -> dict:
    """Discriminative finetuning of the ten decoders (beyond the reference, whose finetuning is
    one scale per class): `model.config.finetune_steps` Adam steps (learning rate
    `finetune_lr`, cosine decay to 0) on batches of `FINETUNE_BATCH` random training images
    minimising, per image of class y,

        s * (own-class VAE loss) / 784  +  w * cross-entropy(softmax(-s l(x)), y),

    s the confidence scale (440), w `finetune_weight`, l_c(x) = (||x - G_c(z*_c)||^2 +
    1/2 ||z*_c||^2) / 784 the class losses at the optimum z* that `inference` finds (z*
    held fixed: Danskin's gradient, to the decoder weights). The generative term keeps each decoder
    a model of its own class; the cross-entropy pushes a class's decoder away from the images
    of other classes it explains too well. Encoders and BatchNorm statistics stay as trained
    (eval mode). :func:`finetune_inference` of the model's config finds z*, its prototypes
    decoded again every `FINETUNE_REFRESH` steps. Returns the summary (mean cross-entropy and batch
    accuracy per 50 steps)."""
    steps = model.config.finetune_steps
    if steps <= 0:
        raise ValueError(f"finetune_decoders: finetune_steps must be > 0, got {steps}")
    torch.manual_seed(seed)
    model.eval()
    encoders = [p for vae in model.vaes for p in vae.encoder.parameters()]
    for p in encoders:                   # not trained here: no gradient to compute for them
        p.requires_grad_(False)
    try:
        return _finetune(model, x, y, np.random.default_rng(seed), progress, finetune_inference(model.config))
    finally:
        for p in encoders:
            p.requires_grad_(True)


def _finetune(model: ABS, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, progress: bool,
              inference: Inference) -> dict:
    start = time.perf_counter()
    cfg = model.config
    steps, classes = cfg.finetune_steps, cfg.classes
    params = [p for vae in model.vaes for p in vae.decoder.parameters()]
    opt = torch.optim.Adam(params, lr=cfg.finetune_lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    n_protos = inference.prototypes
    history, ce_sum, hits, seen = [], 0.0, 0, 0
    bar = tqdm(range(steps), disable=not progress, desc="ABS finetuning", leave=False,
               position=_train.BAR_POSITION)
    for i in bar:
        if i % FINETUNE_REFRESH == 0:
            protos = model.prototypes(n_protos)          # kept while the weights move on
        rows = rng.choice(len(x), size=min(FINETUNE_BATCH, len(x)), replace=False)
        xb, yb = to_tensor(x[rows]).flatten(1), torch.from_numpy(np.asarray(y[rows])).long()
        idx = model.nearest_prototypes(xb, n_protos, protos)
        z, _ = model.solve(xb, inference, start=protos[0][idx])
        recs = torch.stack([model.vaes[c].decode(z[:, c]).flatten(1) for c in range(classes)], 1)
        losses = ABS._losses(xb, z, recs)                # l at z*, gradient to the decoders
        ce = F.cross_entropy(-cfg.confidence_scale * losses, yb)
        gen = sum(model.vaes[c].loss(xb[yb == c].view(-1, 1, 28, 28), cfg.beta).sum()
                  for c in range(classes) if bool((yb == c).any())) / len(yb) / PIXELS
        loss = cfg.confidence_scale * gen + cfg.finetune_weight * ce
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ce_sum, hits, seen = ce_sum + ce.item() * len(yb), hits + int((losses.argmin(1) == yb).sum()), seen + len(yb)
        bar.set_postfix(ce=f"{ce.item():.3f}")
        if (i + 1) % 50 == 0 or i + 1 == steps:
            history.append({"step": i + 1, "cross_entropy": round(ce_sum / seen, 4),
                            "batch_accuracy": round(hits / seen, 4)})
            log.info("ABS finetuning step %d: cross-entropy %.4f", i + 1, ce_sum / seen)
            ce_sum, hits, seen = 0.0, 0, 0
    model.eval()
    return {"steps": steps, "lr": cfg.finetune_lr, "weight": cfg.finetune_weight,
            "batch_size": FINETUNE_BATCH, "mode": cfg.finetune_mode, "inference": asdict(inference),
            "history": history, "seconds": round(time.perf_counter() - start, 1)}
