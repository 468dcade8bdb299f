"""Eval-mode speed of the classifier and the VAE in their two memory layouts, on real MNIST.

Usage: python bench/layout_speed.py [--run DIR] [--images 2000] [--rounds 8]
Eval mode (`EvalChannelsLast`, abstain/models/layout.py) lays the convolution weights out
channels-last; training mode keeps the default layout. This times, over the first N test images
in batches of 125 as `compute_views` and the VAE detectors run them, the classifier's
`forward_layers` (the one pass behind the logits, features and layers views) and the VAE's
importance-weighted bound (k = 16, fixed draws), each in both layouts, alternating (see
`compare`), and the largest difference between the layouts' outputs. Weights: the run's models, or freshly initialised
ones (same cost). Prints and writes bench/results/layout_speed.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from abstain.data.datasets import load_dataset
from abstain.models.classifier import CNN
from abstain.models.vae import ConvVAE
from abstain.tensors import to_tensor

ROOT = Path(__file__).resolve().parents[1]


def default_layout_eval(model):
    """A copy of `model` in eval behaviour (no dropout) but the default (training) layout."""
    copy = type(model)(model.config)
    copy.load_state_dict(model.state_dict())
    copy.train()                           # default layout
    for m in copy.modules():
        m.training = False                 # eval behaviour without the layout switch
    return copy


def one_pass(fn, x: torch.Tensor, batch: int = 125) -> tuple[float, torch.Tensor]:
    start = time.perf_counter()
    with torch.no_grad():
        out = torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])
    return time.perf_counter() - start, out


def compare(model, fn, x: torch.Tensor, rounds: int) -> dict:
    """Passes of the default-layout copy and of the model alternate, `rounds` times each after
    one untimed warm-up pass of both (timings on a shared 2-core machine drift by 1.5x over a
    minute; alternating exposes both layouts to the same drift); medians reported."""
    default = default_layout_eval(model)
    one_pass(lambda b: fn(default, b), x)
    one_pass(lambda b: fn(model, b), x)
    t_default, t_eval, ratios = [], [], []
    for _ in range(rounds):
        a, out_default = one_pass(lambda b: fn(default, b), x)
        b_, out_eval = one_pass(lambda b: fn(model, b), x)
        t_default.append(a), t_eval.append(b_), ratios.append(a / b_)
    return {"default_layout_images_per_s": round(len(x) / statistics.median(t_default), 1),
            "channels_last_images_per_s": round(len(x) / statistics.median(t_eval), 1),
            "speedup_median": round(statistics.median(ratios), 2),
            "speedup_per_round": [round(r, 2) for r in ratios],
            "max_abs_difference": float((out_default - out_eval).abs().max()),
            "max_abs_value": float(out_default.abs().max())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=None, help="a fitted run whose models to time (default: fresh ones)")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--out", default=str(ROOT / "bench/results/layout_speed.json"))
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    if args.run:
        from abstain.run import load_run
        run = load_run(args.run)
        clf, vae = run.classifier, run.vae
    else:
        clf, vae = CNN(), ConvVAE()
    clf.eval(), vae.eval()
    x = to_tensor(load_dataset("mnist").x_test[:args.images])
    eps = torch.randn(16, vae.config.latent, generator=torch.Generator().manual_seed(0))
    res = {"images": len(x), "batch": 125, "threads": torch.get_num_threads(),
           "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
           "run": args.run,
           "classifier_forward_layers": compare(clf, lambda m, b: torch.cat(m.forward_layers(b), 1),
                                                x, args.rounds),
           "vae_iwae_k16": compare(vae, lambda m, b: m.iwae(b, 16, eps), x, args.rounds)}
    print(json.dumps(res, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    main()
