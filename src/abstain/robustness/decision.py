"""Gradient-free searches, so that gradient masking cannot pass for robustness.

* Decision-based lines: walk the straight line from x toward an image the model gives another
  class (the nearest correctly classified pool image of each of the closest other classes, and,
  when the model offers `reconstructions(x)`, its reconstructions of the other classes), then
  bisect to the decision boundary. Only the predicted label is used.
* Noise: uniform (L-inf amplitude) and Gaussian (standard deviation) noise of growing size.
"""
from __future__ import annotations

import math

import torch

from .minimal import Minima, SearchBudget, first_crossing, predict

NOISE_SIZES = tuple(round(0.05 * i, 2) for i in range(1, 11))     # 0.05 ... 0.5


def pool_candidates(x: torch.Tensor, pool_x: torch.Tensor, pool_y: torch.Tensor,
                    classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image and class, the nearest (L2) pool image of that class: images (N, C, 1, 28, 28)
    and distances (N, C), +inf where the pool has no image of the class."""
    dist = torch.cdist(x.flatten(1), pool_x.flatten(1))                      # (N, P)
    best = torch.full((len(x), classes), math.inf)
    which = torch.zeros((len(x), classes), dtype=torch.long)
    for c in range(classes):
        members = (pool_y == c).nonzero().flatten()
        if len(members):
            d, j = dist[:, members].min(dim=1)
            best[:, c], which[:, c] = d, members[j]
    return pool_x[which], best


def closest_targets(y: torch.Tensor, cand: torch.Tensor, dist: torch.Tensor, k: int):
    """The k closest candidates of classes other than y: (k, N, 1, 28, 28) and validity (k, N)."""
    dist = dist.clone()
    dist[torch.arange(len(y)), y] = math.inf
    k = min(k, dist.shape[1] - 1)
    d, order = dist.topk(k, dim=1, largest=False)                            # (N, k)
    targets = cand[torch.arange(len(y)).unsqueeze(1), order]                 # (N, k, 1, 28, 28)
    return targets.transpose(0, 1), torch.isfinite(d).T


def walk(minima: Minima, idx: torch.Tensor, targets: torch.Tensor, budget: SearchBudget, name: str):
    """Bisect each line x -> target to the boundary (targets the model misclassifies only).
    Returns (the boundary images, which lines were usable) for the images `idx`."""
    x, y = minima.x[idx], minima.y[idx]
    usable = predict(minima.model, targets) != y
    d = targets - x

    def path(t, sel):
        return x[sel] + t.view(-1, 1, 1, 1) * d[sel]

    sel = usable.nonzero().flatten()
    out = targets.clone()
    if len(sel):
        _, found, adv, pred = first_crossing(minima.model, y[sel], lambda t, s: path(t, sel[s]),
                                             budget.line_grid, budget.line_bisect)
        minima.offer(idx[sel[found]], adv[found], name, pred[found])
        out[sel[found]] = adv[found]
    return out, usable


def decision_search(minima: Minima, pool_x: torch.Tensor, pool_y: torch.Tensor, budget: SearchBudget) -> None:
    """Lines toward the nearest correctly classified pool images of the closest other classes,
    and toward the model's own reconstructions of the other classes when it has them."""
    idx = minima.todo()
    if len(idx) == 0 or budget.line_targets < 1:
        return
    x, y = minima.x[idx], minima.y[idx]
    ok = predict(minima.model, pool_x) == pool_y
    sources = [("line_image", *pool_candidates(x, pool_x[ok], pool_y[ok]))]
    if hasattr(minima.model, "reconstructions"):
        with torch.no_grad():
            rec = minima.model.reconstructions(x).unsqueeze(2).clamp(0, 1)          # (N, 10, 1, 28, 28)
        sources.append(("line_reconstruction", rec, (rec - x.unsqueeze(1)).flatten(2).norm(dim=2)))
    for name, cand, dist in sources:
        targets, valid = closest_targets(y, cand, dist, budget.line_targets)
        for t, v in zip(targets, valid):
            sel = v.nonzero().flatten()
            if len(sel):
                walk(minima, idx[sel], t[sel], budget, name)


def _noise(kind: str, shape, size: float, gen: torch.Generator) -> torch.Tensor:
    if kind == "uniform":
        return (torch.rand(shape, generator=gen) * 2 - 1) * size
    return torch.randn(shape, generator=gen) * size


def noise_check(minima: Minima, budget: SearchBudget, gen: torch.Generator,
                sizes=NOISE_SIZES) -> dict:
    """Accuracy under uniform / Gaussian noise of each size (an image counts as correct when
    every draw is); every noisy image that fools the model is also offered to `minima`."""
    out = {}
    for kind in ("uniform", "gaussian"):
        acc = []
        for size in sizes:
            correct = minima.clean_correct.clone()
            for _ in range(budget.noise_draws):
                idx = correct.nonzero().flatten()
                if len(idx) == 0:
                    break
                noisy = (minima.x[idx] + _noise(kind, minima.x[idx].shape, size, gen)).clamp(0, 1)
                correct[idx] = ~minima.offer(idx, noisy, f"noise_{kind}")
            acc.append(round(correct.float().mean().item(), 4))
        out[kind] = {"size": list(sizes), "accuracy": acc}
    return out

