"""Training loops for the classifier and the VAE: seeded, with progress bars, best-on-validation."""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .errors import InputError
from .models.classifier import CNN
from .models.vae import ConvVAE, mutate
from .tensors import to_tensor

log = logging.getLogger(__name__)

#: the terminal line of this process's training progress bars: None in one process, the
#: worker's slot when several train side by side (abstain.train_pool)
BAR_POSITION: int | None = None

SCHEDULES = ("onecycle", "constant")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.0
    shift: int = 2            # random translation augmentation, in pixels (0 = off)
    seed: int = 0
    max_train: int | None = None   # use only the first N training images (tests, quick runs)
    max_val: int | None = None     # validate each epoch on the first N validation images only (tests)
    patience: int = 3              # early stopping on the validation metric
    #: learning rate over training: "onecycle" (warm up to `lr`, then anneal) or "constant"
    #: (Adam at `lr` throughout, as the ABS reference trains)
    schedule: str = "onecycle"
    #: probability of each light distortion (zoom 0.9-1.1x, shear up to 6 degrees, a random 3x3
    #: elastic grid of up to 1 px), drawn independently per image, after the shift; 0 = off.
    #: The ABS reference's Augmentor pipeline uses 0.1 (and a skew we do not draw). Like `shift`,
    #: used by the classifier, ABS and adversarial training (`augment`), not by the VAE's
    distort: float = 0.0

    def __post_init__(self):
        """Settings no training can run with fail here, as an InputError (a ValueError) that
        names the field, before any data is loaded or model trained."""
        for name in ("max_train", "max_val"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1 (or None for all), got {getattr(self, name)}")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not 0 < self.lr < math.inf:
            raise InputError(f"lr must be a positive number, got {self.lr}")
        if not 0 <= self.weight_decay < math.inf:
            raise InputError(f"weight_decay must be >= 0, got {self.weight_decay}")
        if self.shift < 0:
            raise InputError(f"shift must be >= 0 pixels, got {self.shift}")
        if not 0 <= self.distort <= 1:
            raise InputError(f"distort is a probability in [0, 1], got {self.distort}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"unknown learning-rate schedule {self.schedule!r}; known: {', '.join(SCHEDULES)}")


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    order = rng.permutation(n)
    for i in range(0, n, batch_size):
        yield order[i:i + batch_size]


def random_shift(x: torch.Tensor, pixels: int, gen: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in [-pixels, pixels]^2, filling with zeros."""
    if pixels <= 0:
        return x
    n = x.shape[0]
    padded = F.pad(x, (pixels,) * 4)
    offs = torch.randint(0, 2 * pixels + 1, (n, 2), generator=gen)
    rows = (offs[:, :1] + torch.arange(28)).unsqueeze(2).expand(n, 28, 28 + 2 * pixels)
    out = padded[:, 0].gather(1, rows)                                           # (n, 28, 28+2p)
    cols = (offs[:, 1:] + torch.arange(28)).unsqueeze(1).expand(n, 28, 28)
    return out.gather(2, cols).unsqueeze(1)


def random_distort(x: torch.Tensor, p: float, gen: torch.Generator) -> torch.Tensor:
    """Each image (N, 1, 28, 28) zoomed by 0.9-1.1x, sheared by up to 6 degrees and warped by a
    3x3 grid of displacements of up to 1 px, each with probability `p` (bilinear, zero fill)."""
    if p <= 0:
        return x
    n, size = x.shape[0], x.shape[-1]

    def chosen(values: torch.Tensor, neutral: float) -> torch.Tensor:
        return torch.where(torch.rand(n, generator=gen) < p, values, torch.full_like(values, neutral))
    zoom = chosen(0.9 + 0.2 * torch.rand(n, generator=gen), 1.0)
    shear = chosen(torch.deg2rad(12 * torch.rand(n, generator=gen) - 6), 0.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1 / zoom
    theta[:, 0, 1] = torch.tan(shear) / zoom
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    warp = (2 * torch.rand(n, 2, 3, 3, generator=gen) - 1) * (2 / size)      # up to 1 px, grid units
    warp = warp * chosen(torch.ones(n), 0.0)[:, None, None, None]
    grid = grid + F.interpolate(warp, size=(size, size), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    out = F.grid_sample(x.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    changed = (zoom != 1) | (shear != 0) | (warp.flatten(1).abs().sum(1) > 0)
    return torch.where(changed[:, None, None, None], out.clamp(0, 1), x)


def augment(x: torch.Tensor, cfg: TrainConfig, gen: torch.Generator) -> torch.Tensor:
    """A training batch as `cfg` augments it: shifted (`cfg.shift`), then distorted (`cfg.distort`)."""
    return random_distort(random_shift(x, cfg.shift, gen), cfg.distort, gen)


def _schedule(opt, total_steps: int, cfg: TrainConfig):
    """cfg.schedule is one of SCHEDULES (TrainConfig checks it)."""
    if cfg.schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(total_steps, 1), pct_start=0.15)


@torch.no_grad()
def accuracy(model: CNN, x: np.ndarray, y: np.ndarray, batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(to_tensor(x[i:i + batch_size]))
        correct += (logits.argmax(1).numpy() == y[i:i + batch_size]).sum()
    return float(correct) / len(x)


def _fit(model: torch.nn.Module, n: int, step, validate, cfg: TrainConfig, progress: bool,
         what: str, metric: str) -> dict:
    """Shared loop: Adam + one-cycle LR over shuffled batches of `n` items; `step(idx)` returns the
    loss of a batch, `validate()` a score to maximise. Keeps the best weights; stops early."""
    start = time.perf_counter()
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = _schedule(opt, cfg.epochs * math.ceil(n / cfg.batch_size), cfg)
    best, best_state, history, stale = -math.inf, None, [], 0
    for epoch in range(cfg.epochs):
        model.train()
        bar = tqdm(list(_batches(n, cfg.batch_size, rng)), disable=not progress,
                   desc=f"{what} epoch {epoch + 1}/{cfg.epochs}", leave=False, position=BAR_POSITION)
        for idx in bar:
            loss = step(idx)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.set_postfix(loss=f"{loss.item():.3f}")
        val = validate()
        history.append({"epoch": epoch + 1, metric: val})
        log.info("%s epoch %d: %s %.4f", what, epoch + 1, metric, val)
        if val > best:
            best, best_state, stale = val, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return {metric: best, "history": history, "seconds": round(time.perf_counter() - start, 1),
            "threads": torch.get_num_threads()}


def train_classifier(model: CNN, x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                     cfg: TrainConfig = TrainConfig(), progress: bool = False) -> dict:
    """Cross-entropy training with shift augmentation; keeps the weights best on validation."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, y = (x[:cfg.max_train], y[:cfg.max_train]) if cfg.max_train else (x, y)

    def step(idx):
        xb = augment(to_tensor(x[idx]), cfg, gen)
        return F.cross_entropy(model(xb), torch.from_numpy(y[idx]))

    x_val, y_val = x_val[:cfg.max_val], y_val[:cfg.max_val]
    return _fit(model, len(x), step, lambda: accuracy(model, x_val, y_val), cfg, progress,
                "classifier", "val_accuracy")


@torch.no_grad()
def mean_elbo(vae: ConvVAE, x: np.ndarray, batch_size: int = 1000) -> float:
    vae.eval()
    total = sum(vae.elbo(to_tensor(x[i:i + batch_size])).sum().item()
                for i in range(0, len(x), batch_size))
    return total / len(x)


def train_vae(vae: ConvVAE, x: np.ndarray, x_val: np.ndarray, cfg: TrainConfig = TrainConfig(),
              progress: bool = False, mutation: float = 0.0, what: str = "VAE") -> dict:
    """Maximise the ELBO; keeps the weights best on validation ELBO.

    `mutation` > 0 trains a background model (Ren et al. 2019): every batch, each pixel is
    replaced by a uniform random grey level with that probability (validation images too)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    x, x_val = (x[:cfg.max_train] if cfg.max_train else x), x_val[:cfg.max_val]
    if mutation > 0:
        x_val = (mutate(to_tensor(x_val), mutation, torch.Generator().manual_seed(cfg.seed + 1))
                 .squeeze(1).numpy())

    def step(idx):
        return -vae.elbo(mutate(to_tensor(x[idx]), mutation, gen)).mean()

    return _fit(vae, len(x), step, lambda: mean_elbo(vae, x_val), cfg, progress, what, "val_elbo")
