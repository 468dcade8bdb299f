"""Training-step speed of the classifier, the VAE and the ten ABS class VAEs in the two memory
layouts of their convolution weights (default and channels-last), on real MNIST batches.

Usage: python bench/train_layout_speed.py [--steps 20] [--rounds 6]
Each model's training step (forward, backward, Adam) as `abstain fit` takes it: the CNN on
128 shifted digits (cross-entropy), the VAE on 128 digits (minus the ELBO), ABS on 32 digits
of each class, each class VAE on its own (squared error + KL). Two copies of each freshly
initialised model, one per layout, alternate for `rounds` rounds of `steps` steps after one
untimed warm-up round (timings on a shared 2-core machine drift; alternating exposes both
layouts to the same drift); medians reported. ABS trains channels-last since this bench
(abstain/train_abs.py), the CNN and the VAE in the default layout.
Prints and writes bench/results/train_layout_speed.json.
"""
from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from abstain.atomic import write_json
from abstain.data.datasets import load_dataset
from abstain.models.abs import ABS, ABSConfig
from abstain.models.classifier import CNN
from abstain.models.vae import ConvVAE
from abstain.tensors import to_tensor
from abstain.train import random_shift

ROOT = Path(__file__).resolve().parents[1]


def set_layout(model: torch.nn.Module, layout: torch.memory_format) -> torch.nn.Module:
    """The model in training mode with its convolution weights in `layout` (after `train()`,
    which for the CNN and the VAE lays them out in the default layout)."""
    model.train()
    return model.to(memory_format=layout)


def compare(model: torch.nn.Module, loss_fn, batches: list, steps: int, rounds: int) -> dict:
    layouts = {"default": torch.contiguous_format, "channels_last": torch.channels_last}
    runs = {}
    for name, layout in layouts.items():
        m = set_layout(copy.deepcopy(model), layout)
        runs[name] = (m, torch.optim.Adam(m.parameters(), lr=1e-3))

    def one_round(name: str, first: int) -> float:
        m, opt = runs[name]
        start = time.perf_counter()
        for i in range(first, first + steps):
            loss = loss_fn(m, batches[i % len(batches)])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return time.perf_counter() - start

    for name in layouts:                       # warm-up
        one_round(name, 0)
    times = {name: [] for name in layouts}
    for r in range(rounds):
        for name in layouts:
            times[name].append(one_round(name, (r + 1) * steps))
    ratios = [a / b for a, b in zip(times["default"], times["channels_last"])]
    return {"default_ms_per_step": round(1000 * statistics.median(times["default"]) / steps, 1),
            "channels_last_ms_per_step": round(1000 * statistics.median(times["channels_last"]) / steps, 1),
            "speedup_median": round(statistics.median(ratios), 2),
            "speedup_per_round": [round(r, 2) for r in ratios]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "bench/results/train_layout_speed.json"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    data = load_dataset("mnist")
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    n_batches = args.steps * (args.rounds + 1)
    plain = [rng.choice(len(data.x_train), 128, replace=False) for _ in range(n_batches)]
    digits = [(random_shift(to_tensor(data.x_train[i]), 2, gen), torch.from_numpy(data.y_train[i]).long())
              for i in plain]
    by_class = [np.flatnonzero(data.y_train == c) for c in range(10)]
    per_class = [[random_shift(to_tensor(data.x_train[rng.choice(r, 32, replace=False)]), 1, gen)
                  for r in by_class] for _ in range(n_batches)]
    abs_model = ABS(ABSConfig())
    res = {"steps": args.steps, "rounds": args.rounds, "threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "classifier_batch128": compare(CNN(), lambda m, b: F.cross_entropy(m(b[0]), b[1]),
                                          digits, args.steps, args.rounds),
           "vae_batch128": compare(ConvVAE(), lambda m, b: -m.elbo(b[0]).mean(),
                                   digits, args.steps, args.rounds),
           "abs_10x32": compare(abs_model, lambda m, b: torch.stack(
               [vae.loss(x, m.config.beta).mean() for vae, x in zip(m.vaes, b)]).sum(),
               per_class, args.steps, args.rounds)}
    print(json.dumps(res, indent=2))
    write_json(args.out, res)
    return res


if __name__ == "__main__":
    main()
