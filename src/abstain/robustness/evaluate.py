"""Robustness of several models on the same test images: per-image minimal adversarial
perturbations (L2, L-inf), accuracy-vs-eps curves derived from them, medians, noise accuracy,
distal images, as one JSON-able result.

Per image and norm, the minimal perturbation is the smallest over every attack that succeeds
(see :mod:`.minimal`, :mod:`.decision`): 0 for an image misclassified clean, +inf (null in the
JSON) when nothing fools it. Accuracy at eps = share of images whose minimal perturbation > eps.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import identity
from ..errors import InputError
from ..models.abs_modes import ATTACK_MODES, resolve_mode
from ..tensors import to_tensor
from .decision import decision_search, noise_check
from .distal import DistalConfig, distal_images
from .minimal import CAPS, NORMS, Minima, SearchBudget, eps_search, gradient_line, predict
from .models import ROBUSTNESS_MODELS, load_model

log = logging.getLogger(__name__)

GRIDS = {"l2": np.round(np.arange(0, 6.0001, 0.05), 3), "linf": np.round(np.arange(0, 0.5001, 0.005), 3)}
POINTS = {"l2": (1.0, 1.5, 2.0), "linf": (0.1, 0.2, 0.3)}      # accuracies reported as acc_<norm>_<eps>
#: the ABS authors' released curves (Schott et al. 2019): medians and accuracy at L2 = 1.5
ANCHORS = {"l2_median": {"abs": 2.24, "madry": 1.36, "cnn": 1.09},
           "linf_median": {"binary_abs": 0.44, "madry": 0.34, "abs": 0.23, "cnn": 0.075},
           "acc_l2_1.5": {"abs": 0.80, "madry": 0.35, "cnn": 0.08}}


@dataclass(frozen=True)
class RobustnessConfig:
    n: int = 200                # test images attacked
    pool: int = 1000            # other test images the decision-based lines walk toward
    seed: int = 0
    batch_size: int = 200       # images per model call
    fast: SearchBudget = SearchBudget()
    #: ABS costs 10-50 CNN forwards per image: fewer steps, no PGD restarts, fewer lines; the
    #: margin loss, since ABS's logits (minus per-pixel losses) are too close for a useful softmax
    slow: SearchBudget = SearchBudget(steps=10, restarts=0, search_steps=6, line_targets=2, noise_draws=1,
                                      loss="margin")
    distal: DistalConfig = DistalConfig()
    #: the ABS inference attacked (and evaluated): "fast" (8,000 prototypes, 10 Adam steps at rate
    #: 0.1 on the best three classes); "faithful" is 20x slower, too slow for 200 images in 30
    #: minutes on 2 cores. The JSON's settings name the inference ("abs_inference")
    abs_mode: str = "fast"

    def __post_init__(self):
        for name in ("n", "pool", "batch_size"):
            if getattr(self, name) < 1:
                raise InputError(f"robustness {name} must be at least 1, got {getattr(self, name)}")
        if self.seed < 0:
            raise InputError(f"seed must be >= 0, got {self.seed}")
        if self.abs_mode not in ATTACK_MODES:
            raise InputError(f"robustness abs_mode must be one of {', '.join(ATTACK_MODES)}, got {self.abs_mode!r}")

    def budget(self, name: str) -> SearchBudget:
        return self.slow if ROBUSTNESS_MODELS[name].slow else self.fast


class Batched(torch.nn.Module):
    """Calls `model` on slices of at most `size` images (gradients flow through)."""

    def __init__(self, model: torch.nn.Module, size: int):
        super().__init__()
        self.model, self.size = model, size
        for name in ("reconstructions", "confidence"):          # optional extras, passed on
            if hasattr(model, name):
                setattr(self, name, getattr(model, name))
        if hasattr(model, "reconstructions"):
            self.reconstructions = lambda x: self._map(model.reconstructions, x)

    def _map(self, fn, x):
        return torch.cat([fn(x[i:i + self.size]) for i in range(0, len(x), self.size)])

    def forward(self, x):
        return self._map(self.model, x)


def select(data, cfg: RobustnessConfig):
    """Seeded disjoint test subsets: the attacked images and the pool."""
    if cfg.n < 1 or cfg.pool < 1 or cfg.n + cfg.pool > len(data.x_test):
        raise InputError(f"--n {cfg.n} plus the pool of {cfg.pool} must be between 2 and "
                         f"the {len(data.x_test)} test images")
    order = np.random.default_rng(cfg.seed).permutation(len(data.x_test))
    a, p = order[:cfg.n], order[cfg.n:cfg.n + cfg.pool]
    return (to_tensor(data.x_test[a]), torch.as_tensor(data.y_test[a]).long(),
            to_tensor(data.x_test[p]), torch.as_tensor(data.y_test[p]).long(), a)


def attack_model(model, x, y, pool_x, pool_y, budget: SearchBudget, seed: int, bar=None):
    """Every attack on one model; returns (Minima, noise accuracies, seconds per stage)."""
    gen = torch.Generator().manual_seed(seed)
    minima, seconds = Minima(model, x, y), {}
    stages = [("noise", lambda: noise_check(minima, budget, gen)),
              ("decision", lambda: decision_search(minima, pool_x, pool_y, budget))]
    stages += [(f"fgsm_{n}", lambda n=n: gradient_line(minima, n, budget)) for n in NORMS]
    stages += [(f"eps_search_{n}", lambda n=n: eps_search(minima, n, budget, gen)) for n in NORMS]
    out = {}
    for stage, fn in stages:
        t0 = time.perf_counter()
        out[stage] = fn()
        seconds[stage] = round(time.perf_counter() - t0, 2)
        if bar is not None:
            bar.update(1)
    return minima, out["noise"], seconds


def _num(v: float) -> float | None:
    return None if not np.isfinite(v) else round(float(v), 5)


def summarise(minima: Minima) -> dict:
    """Medians, accuracies at the reported eps, curves, which attack found each minimum."""
    out = {"clean_accuracy": round(minima.clean_correct.float().mean().item(), 4)}
    for norm in NORMS:
        size = minima.size[norm].numpy().astype(np.float64)
        out[f"{norm}_median"] = _num(np.median(size))
        for eps in POINTS[norm]:
            out[f"acc_{norm}_{eps:g}"] = round(float(np.mean(size > eps)), 4)
        out[f"{norm}_unfooled"] = int(np.isinf(size).sum())
        out[f"{norm}_curve"] = {"eps": GRIDS[norm].tolist(),
                                "accuracy": [round(float(np.mean(size > e)), 4) for e in GRIDS[norm]]}
        by = [b for b in minima.by[norm] if b]
        out[f"{norm}_found_by"] = {k: by.count(k) for k in sorted(set(by))}
        out[f"{norm}_minimal"] = [_num(v) for v in size]
    return out


def robustness(run, names: list[str], cfg: RobustnessConfig = RobustnessConfig(),
               progress: bool = False) -> tuple[dict, dict]:
    """Attack each model on the same n test images. Returns (JSON-able result, arrays for the
    report: the images, each model's minimal adversarials and distal images)."""
    x, y, pool_x, pool_y, index = select(run.dataset, cfg)
    result = {"models": {}, "settings": {**asdict(cfg), "models": names, "test_indices": index.tolist(),
                                         "abs_inference": asdict(resolve_mode(cfg.abs_mode)),
                                         "caps": CAPS, "anchors": ANCHORS}}
    arrays = {"x": x[:, 0].numpy(), "y": y.numpy(), "models": {}}
    bar = tqdm(total=7 * len(names), desc="robustness", disable=not progress)
    for name in names:
        bar.set_description(f"robustness: {name}")
        t0, cpu0 = time.perf_counter(), time.process_time()
        model = Batched(load_model(name, run, progress, cfg.abs_mode), cfg.batch_size)
        t_load = time.perf_counter() - t0
        budget = cfg.budget(name)
        minima, noise, seconds = attack_model(model, x, y, pool_x, pool_y, budget, cfg.seed, bar)
        t1 = time.perf_counter()
        distal = distal_images(model, cfg.distal)
        seconds["distal"], seconds["load_or_train"] = round(time.perf_counter() - t1, 2), round(t_load, 2)
        bar.update(1)
        result["models"][name] = {**summarise(minima), "noise": noise, "budget": asdict(budget),
                                  "checkpoint": identity(run.path / ROBUSTNESS_MODELS[name].file),
                                  "distal": {k: v for k, v in distal.items() if k != "images"},
                                  "seconds": seconds, "cpu_seconds": round(time.process_time() - cpu0, 1)}
        arrays["models"][name] = {"distal": distal["images"]}
        for n in NORMS:
            arrays["models"][name][n] = minima.adv[n][:, 0].numpy()
            arrays["models"][name][f"pred_{n}"] = predict(model, minima.adv[n]).numpy()
        log.info("%s: L2 median %s, L-inf median %s", name, result["models"][name]["l2_median"],
                 result["models"][name]["linf_median"])
    bar.close()
    return result, arrays
