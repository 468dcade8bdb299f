"""Minimal adversarial perturbations, per image, in L2 and L-infinity.

Every attack hands its candidates to :class:`Minima`, which checks each one with the model and
keeps, per image and norm, the smallest perturbation that really changes the prediction (a
misclassified clean image has 0; an image no attack fools keeps +inf). The gradient attacks here:

* `gradient_line`: FGSM as a line search: one gradient, then the first point along its sign
  (L-inf) or its normalised direction (L2) that fools the model;
* `eps_search`: bisection on a per-image eps, each probe running BIM (no random start, the
  budget's loss) and, on the images it misses, PGD with random restarts on the margin loss
  (`abstain.attacks`), so that the two losses complement each other.

The gradient-free searches (decision-based lines, noise) are in :mod:`.decision`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..attacks import AttackConfig, attack_batch, loss_gradient

NORMS = ("l2", "linf")
CAPS = {"l2": 10.0, "linf": 0.5}       # the largest eps the bisection probes when nothing is known


@dataclass(frozen=True)
class SearchBudget:
    steps: int = 20            # BIM / PGD steps per eps probe
    restarts: int = 1          # PGD random restarts (margin loss) on the images BIM missed
    loss: str = "ce"           # BIM's and the FGSM line's loss: "ce" or "margin" (scale-free)
    search_steps: int = 8      # bisection probes on eps, per norm
    line_targets: int = 3      # decision-based: nearest other-class images (and reconstructions)
    line_grid: int = 4         # forwards on a coarse grid along each line, before bisecting
    line_bisect: int = 8       # bisection forwards along each line
    noise_draws: int = 2       # noise draws per size and kind


@torch.no_grad()
def predict(model, x: torch.Tensor) -> torch.Tensor:
    return model(x).argmax(1)


def norm_of(delta: torch.Tensor, norm: str) -> torch.Tensor:
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


class Minima:
    """Per image and norm: the smallest verified adversarial so far and the attack behind it."""

    def __init__(self, model, x: torch.Tensor, y: torch.Tensor):
        self.model, self.x, self.y = model, x, y
        wrong = predict(model, x) != y
        self.size = {n: torch.where(wrong, 0.0, math.inf) for n in NORMS}
        self.adv = {n: x.clone() for n in NORMS}
        self.by = {n: ["clean" if w else "" for w in wrong.tolist()] for n in NORMS}
        self.clean_correct = ~wrong

    def todo(self) -> torch.Tensor:
        """Indices of the images still worth attacking (correct when clean)."""
        return self.clean_correct.nonzero().flatten()

    def offer(self, idx: torch.Tensor, adv: torch.Tensor, name: str,
              pred: torch.Tensor | None = None) -> torch.Tensor:
        """Candidates `adv` for images `idx`; returns which of them fool the model."""
        pred = predict(self.model, adv) if pred is None else pred
        fooled = pred != self.y[idx]
        for n in NORMS:
            d = norm_of(adv - self.x[idx], n)
            better = fooled & (d < self.size[n][idx])
            j = idx[better]
            self.size[n][j] = d[better]
            self.adv[n][j] = adv[better]
            for k in j.tolist():
                self.by[n][k] = name
        return fooled


def first_crossing(model, y: torch.Tensor, path, grid: int, bisect: int):
    """Smallest t in (0, 1] found where path(t, sel) is misclassified: `grid` evenly spaced
    points, then `bisect` halvings between the last correct and the first fooled one.
    Returns (t (N,), found (N,) bool, images at t, their predictions)."""
    n = len(y)
    lo, hi = torch.zeros(n), torch.ones(n)
    found = torch.zeros(n, dtype=torch.bool)
    adv, pred = path(hi, torch.arange(n)), y.clone()
    for t in torch.linspace(1 / grid, 1, grid):
        sel = (~found).nonzero().flatten()
        if len(sel) == 0:
            break
        imgs = path(torch.full((len(sel),), float(t)), sel)
        p = predict(model, imgs)
        hit = p != y[sel]
        j = sel[hit]
        found[j], hi[j], adv[j], pred[j] = True, float(t), imgs[hit], p[hit]
        lo[sel[~hit]] = float(t)
    sel = found.nonzero().flatten()
    for _ in range(bisect if len(sel) else 0):
        mid = (lo[sel] + hi[sel]) / 2
        imgs = path(mid, sel)
        p = predict(model, imgs)
        hit = p != y[sel]
        j = sel[hit]
        hi[j], adv[j], pred[j] = mid[hit], imgs[hit], p[hit]
        lo[sel[~hit]] = mid[~hit]
    return hi, found, adv, pred


def gradient_line(minima: Minima, norm: str, budget: SearchBudget) -> None:
    """FGSM (L-inf: sign of the gradient) / FGM (L2: normalised gradient) as a line search."""
    idx = minima.todo()
    if len(idx) == 0:
        return
    x, y = minima.x[idx], minima.y[idx]
    g = loss_gradient(minima.model, x, y, budget.loss)
    if norm == "linf":
        direction = g.sign() * CAPS["linf"]
    else:
        direction = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1) * CAPS["l2"]

    def path(t, sel):
        return (x[sel] + t.view(-1, 1, 1, 1) * direction[sel]).clamp(0, 1)

    _, found, adv, pred = first_crossing(minima.model, y, path, 2 * budget.line_grid, budget.line_bisect)
    minima.offer(idx[found], adv[found], "fgsm" if norm == "linf" else "fgm_l2", pred[found])


def _probe(minima: Minima, idx, eps, norm: str, budget: SearchBudget, gen) -> torch.Tensor:
    """BIM at per-image eps, then PGD restarts on the images it missed; which were fooled."""
    x, y = minima.x[idx], minima.y[idx]
    suffix = "_l2" if norm == "l2" else ""
    bim = AttackConfig(name="bim" + suffix, eps=1.0, steps=budget.steps, loss=budget.loss)
    fooled = minima.offer(idx, attack_batch(minima.model, x, y, bim, gen, eps), "bim" + suffix)
    miss = (~fooled).nonzero().flatten()
    if budget.restarts > 0 and len(miss):
        pgd = AttackConfig(name="pgd" + suffix, eps=1.0, steps=budget.steps, restarts=budget.restarts,
                           loss="margin")
        adv = attack_batch(minima.model, x[miss], y[miss], pgd, gen, eps[miss])
        fooled[miss] = minima.offer(idx[miss], adv, "pgd" + suffix)
    return fooled


def eps_search(minima: Minima, norm: str, budget: SearchBudget, gen: torch.Generator) -> None:
    """Bisection on each image's eps between 0 and the smallest perturbation known (or CAPS)."""
    idx = minima.todo()
    if len(idx) == 0:
        return
    lo = torch.zeros(len(idx))
    for _ in range(budget.search_steps):
        hi = minima.size[norm][idx].clamp(max=CAPS[norm])
        lo = torch.minimum(lo, hi)        # another attack may have gone below a failed probe
        mid = (lo + hi) / 2
        fooled = _probe(minima, idx, mid, norm, budget, gen)
        lo = torch.where(fooled, lo, mid)
