"""ABS accuracy and speed: faithful vs fast inference, the accuracy-vs-throughput curve, and the
largest confidence on uniform noise (ABS beside the run's CNN).

Usage: python bench/abs_speed.py [--epochs 10] [--shift 1] [--batch-size 32] [--schedule onecycle] [--distort 0] [--with-val] [--beta 1] [--class-scales 0] [--finetune 0] [--finetune-weight 3] [--fast-mode fast|checked] [--check-margin M] [--fast-lr 0.1] [--fast-steps 10] [--n-faithful 1000] [--n-curve 500] [--threads 2] [--cnn-run DIR] [--out FILE]

Trains the ten class VAEs exactly as `abstain fit --abs-epochs E` does (same code, same seed;
the checkpoint is cached in $ABSTAIN_HOME/bench/), then, in one process on `--threads` CPU
threads: faithful inference on the first N test images, fast inference on the same images and
on all 10,000 (the same pass when N is 10,000), a grid of (prototypes, steps, refined classes) on the first `--n-curve` validation images
(the fast mode was chosen from it),
and confidences on 2,000 uniform-noise images. `--fast-lr`: the fast mode's Adam learning rate
(default abstain's: 0.1 since 2026-11-25, 0.05 before; the JSONs written before then measured
0.05 without naming it in their command; their `inference` entries say so); `--fast-steps`: its
number of Adam steps (default abstain's; named in the command when it differs); `--fast-mode
checked`: measure the checked mode (the fast mode, its close calls solved again) in its place;
`--check-margin`: with it, the logit gap below which a call counts as close (default abstain's). Images per second
are wall-clock over whole batches with the prototype cache already built (its build time is
reported apart). The JSON also lists the test images each mode gets wrong (`faithful_errors`,
`fast_all_test_errors`: indices into the test set). Writes bench/results/abs_speed.json and
bench/results/abs_speed.png.
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from abstain.atomic import atomic_path, write_json
from abstain.checkpoint import load_module, load_or_train
from abstain.data.datasets import load_dataset
from abstain.data.ood import make_ood
from abstain.models.abs import ABS
from abstain.models.abs_modes import FINETUNE_MODES, MODES, Inference
from abstain.models.classifier import CNN, ClassifierConfig
from abstain.run import RunConfig
from abstain.run_models import MODELS, abs_training_images
from abstain.tensors import to_tensor
from abstain.train import SCHEDULES
from abstain.train_abs import finetune_decoders, fit_class_scales, train_abs

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "abs_speed.json"
HOME = Path(os.environ.get("ABSTAIN_HOME", Path.home() / ".cache/abstain"))
#: the run's ABS training settings this bench can change (each a --option of the same name)
TRAIN_OPTIONS = ("shift", "batch_size", "schedule", "distort", "patience", "seed")
CURVE = [Inference(250, 0), Inference(1000, 0), Inference(8000, 0),
         Inference(1000, 4, 0.1), Inference(1000, 4, 0.1, 3), Inference(1000, 10, 0.05, 3),
         Inference(8000, 10, 0.05, 3), Inference(8000, 5, 0.05, 3), Inference(8000, 10, 0.05, 2),
         Inference(8000, 10, 0.05), Inference(8000, 25, 0.05), MODES["faithful"]]


def trained_abs(epochs: int, shift: int | None = None, batch_size: int | None = None,
                schedule: str | None = None, distort: float | None = None,
                with_val: bool = False, beta: float | None = None,
                patience: int | None = None, finetune: int = 0,
                finetune_weight: float | None = None, seed: int | None = None,
                finetune_mode: str | None = None) -> tuple[ABS, dict]:
    """The ten VAEs trained as `abstain fit --abs-epochs E` does, with the run's ABS training
    config changed only where given; cached in $ABSTAIN_HOME/bench/ under a name per change.
    `with_val`: train on the 50,000 training and the 10,000 validation images together (as the
    reference trained on all 60,000); the weights kept are then those of the lowest loss on
    validation images the VAEs have seen, so near the last epoch's. `finetune` > 0: that model's
    decoders then finetuned for that many steps (`abstain fit --abs-finetune`), cached apart;
    `finetune_weight`: the cross-entropy's weight in that finetuning (default the config's);
    `seed`: of the initial weights, batches, shifts and finetuning batches (default the config's, 0);
    `finetune_mode`: a mode of `FINETUNE_MODES` whose inference finds z* in the finetuning instead
    of `FINETUNE_INFERENCE` (`abstain fit --abs-finetune-mode`; cached apart)."""
    base = RunConfig().abs_train
    given = dict(zip(TRAIN_OPTIONS, (shift, batch_size, schedule, distort, patience, seed)))
    cfg = replace(base, epochs=epochs, **{k: v for k, v in given.items() if v is not None})
    suffix = "".join(f"_{k}{getattr(cfg, k)}" for k in given if getattr(cfg, k) != getattr(base, k))
    model_cfg = RunConfig().abs if beta is None else replace(RunConfig().abs, beta=beta)
    suffix += f"_beta{model_cfg.beta:g}" if model_cfg.beta != RunConfig().abs.beta else ""
    path = HOME / "bench" / f"abs_e{epochs}{suffix}{'_trainval' if with_val else ''}.safetensors"

    # the images and the checkpoint key as a run with `abstain fit --abs-with-val` has them
    run_cfg = replace(RunConfig(), abs_train=cfg, abs_train_images="train+val" if with_val else "train")

    def images():
        data = load_dataset("mnist")
        return (data, *abs_training_images(data, run_cfg))

    def train(model):
        data, x, y = images()
        return train_abs(model, x, y, data.x_val, data.y_val, cfg, progress=True)
    want = MODELS["abs"].key(run_cfg) or None
    if finetune <= 0:
        return load_or_train(path, ABS, model_cfg, {"train": cfg}, train, want=want)
    trained, trained_summary = load_or_train(path, ABS, model_cfg, {"train": cfg}, train, want=want)

    def tune(model):
        model.load_state_dict(trained.state_dict())
        _, x, y = images()
        return {**trained_summary, "finetune": finetune_decoders(model, x, y, cfg.seed, progress=True)}
    tuned_cfg = replace(model_cfg, finetune_steps=finetune, finetune_mode=finetune_mode)
    if finetune_weight is not None:
        tuned_cfg = replace(tuned_cfg, finetune_weight=finetune_weight)
    weight = f"_w{tuned_cfg.finetune_weight:g}" if tuned_cfg.finetune_weight != model_cfg.finetune_weight else ""
    mode = f"_{finetune_mode}" if finetune_mode is not None else ""
    return load_or_train(path.with_name(f"{path.stem}_ft{finetune}{weight}{mode}.safetensors"), ABS,
                         tuned_cfg, {"train": cfg}, tune, want=want)


def add_model_options(ap: argparse.ArgumentParser) -> None:
    """The options that say which ABS model a bench measures (see `model_from_args`)."""
    ap.add_argument("--epochs", type=int, default=10, help="ABS training epochs (abstain fit --abs-epochs)")
    ap.add_argument("--shift", type=int, default=RunConfig().abs_train.shift,
                    help="training shift augmentation in pixels (abstain's default: %(default)s)")
    ap.add_argument("--batch-size", type=int, default=RunConfig().abs_train.batch_size,
                    help="training images per class and step (abstain's default: %(default)s)")
    ap.add_argument("--schedule", choices=SCHEDULES, default=RunConfig().abs_train.schedule,
                    help="learning-rate schedule (abstain's default: %(default)s)")
    ap.add_argument("--distort", type=float, default=RunConfig().abs_train.distort,
                    help="probability of each zoom / shear / elastic distortion (abstain's default: %(default)s)")
    ap.add_argument("--patience", type=int, default=RunConfig().abs_train.patience,
                    help="stop after this many epochs without a lower validation loss (abstain's default: "
                         "%(default)s; a long one-cycle schedule with a small --beta can stop early)")
    ap.add_argument("--with-val", action="store_true",
                    help="train on the training and validation images (60,000, as the reference); default: training only")
    ap.add_argument("--finetune", type=int, default=0, metavar="STEPS",
                    help="then finetune the decoders for STEPS steps, as `abstain fit --abs-finetune STEPS` "
                         "(beyond the reference; 0: none)")
    ap.add_argument("--finetune-weight", type=float, default=RunConfig().abs.finetune_weight,
                    help="weight of the cross-entropy in that finetuning (default %(default)s)")
    ap.add_argument("--finetune-mode", choices=FINETUNE_MODES,
                    help="find z* in that finetuning with this ABS mode's inference (default: abstain's "
                         "finetuning inference, 1,000 prototypes and 10 steps on the best 3 classes)")
    ap.add_argument("--seed", type=int, default=RunConfig().abs_train.seed,
                    help="seed of the initial weights, batches, shifts and finetuning batches "
                         "(abstain's default: %(default)s)")
    ap.add_argument("--beta", type=float, default=RunConfig().abs.beta,
                    help="KL weight of the class VAEs' training loss (abstain fit --abs-beta)")


def model_from_args(args: argparse.Namespace) -> tuple[ABS, dict]:
    """The ABS model `add_model_options`' options name, trained or from the cache (`trained_abs`);
    a bad combination exits with one line."""
    if not (args.finetune_weight >= 0 and math.isfinite(args.finetune_weight)):
        sys.exit(f"--finetune-weight must be a number >= 0, got {args.finetune_weight}")
    if args.finetune_weight != RunConfig().abs.finetune_weight and args.finetune <= 0:
        sys.exit("--finetune-weight needs --finetune STEPS (the weight of that finetuning)")
    if args.seed < 0:
        sys.exit(f"--seed must be >= 0, got {args.seed}")
    if args.finetune_mode is not None and args.finetune <= 0:
        sys.exit("--finetune-mode needs --finetune STEPS (the inference of that finetuning)")
    return trained_abs(args.epochs, args.shift, args.batch_size, args.schedule, args.distort,
                       args.with_val, args.beta, args.patience, args.finetune, args.finetune_weight,
                       args.seed, args.finetune_mode)


def measure(model: ABS, inference: Inference, x: np.ndarray, y: np.ndarray) -> dict:
    view = model.with_mode(inference)
    t0 = time.perf_counter()
    view.prototypes(inference.prototypes)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    with torch.no_grad():
        logits = torch.cat([view(to_tensor(x[i:i + 500])) for i in range(0, len(x), 500)])
    seconds = time.perf_counter() - t0
    pred = logits.argmax(1).numpy()
    top = logits.topk(2, dim=1).values
    # "pred" and "gap" (each image's two best logits apart: the checked mode's criterion) are
    # per-image arrays for the caller, not for the JSON
    return {"inference": asdict(inference), "n": len(x), "accuracy": float((pred == y).mean()),
            "images_per_second": len(x) / seconds, "ms_per_image": 1000 * seconds / len(x),
            "prototype_cache_seconds": round(build, 2), "pred": pred, "gap": (top[:, 0] - top[:, 1]).numpy()}


def model_record(args: argparse.Namespace) -> dict:
    """The JSON's fields that name the trained model `add_model_options`' options select."""
    return {"train_epochs": args.epochs, "train_shift": args.shift, "train_batch_size": args.batch_size,
            "train_schedule": args.schedule, "train_distort": args.distort, "train_patience": args.patience,
            "train_seed": args.seed, "abs_beta": args.beta, "finetune_steps": args.finetune,
            "finetune_weight": args.finetune_weight, "finetune_mode": args.finetune_mode,
            "train_images": 60000 if args.with_val else 50000}


def noise_confidence(model: ABS, cnn: CNN | None, noise: np.ndarray, fast: Inference = MODES["fast"]) -> dict:
    with torch.no_grad():
        p_abs = model.confidence(model.with_mode(fast)(to_tensor(noise))).max(1).values.numpy()
        out = {"n": len(noise), "abs_fast_max": float(p_abs.max()), "abs_fast_mean": float(p_abs.mean())}
        few = to_tensor(noise[:200])
        p_f = model.confidence(model.with_mode("faithful")(few)).max(1).values.numpy()
        out.update(abs_faithful_max_first200=float(p_f.max()), abs_faithful_mean_first200=float(p_f.mean()))
        if cnn is not None:
            p_cnn = torch.softmax(cnn(to_tensor(noise)), 1).max(1).values.numpy()
            out.update(cnn_max=float(p_cnn.max()), cnn_mean=float(p_cnn.mean()))
    return out


def plot(curve: list[dict], path: Path, fast: Inference = MODES["fast"]) -> None:
    """The curve's points, numbered by speed and listed beside the plot as
    prototypes/steps[/top k][ @ Adam rate]; the fast mode in orange."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    lines = []
    for number, r in enumerate(sorted(curve, key=lambda r: r["images_per_second"]), 1):
        i = r["inference"]
        is_fast = Inference(**i) == fast
        lines.append(f"{number:2d}  {i['prototypes']}p/{i['steps']}s" + (f"/top{i['refine']}" if i["refine"] else "")
                     + (f" @{i['lr']:g}" if i["steps"] else "")
                     + (f" +check<{i['check_margin']:g}" if i.get("check") else "") + (" (fast)" if is_fast else ""))
        ax.scatter(r["images_per_second"], 100 * r["accuracy"], color="C1" if is_fast else "C0",
                   zorder=3 if is_fast else 2)
        ax.annotate(str(number), (r["images_per_second"], 100 * r["accuracy"]), fontsize=7,   # neighbours
                    xytext=(3, 3) if number % 2 else (3, -9), textcoords="offset points")  # alternate
    ax.set_xscale("log")
    ax.set_xlabel(f"images per second ({torch.get_num_threads()} CPU threads)")
    ax.set_ylabel(f"accuracy, first {curve[0]['n']} MNIST validation images (%)")
    ax.set_title("ABS inference: accuracy vs throughput")
    ax.grid(alpha=0.3)
    fig.text(0.75, 0.88, "prototypes / Adam steps\n/ refined classes @ rate\n\n" + "\n".join(lines),
             va="top", ha="left", fontsize=7, family="monospace")
    fig.tight_layout(rect=(0, 0, 0.74, 1))
    save_png(fig, path)


def save_png(fig, path: Path, grey: bool = False) -> None:
    """Write a matplotlib figure to `path` as a PNG (whole or not at all) and close it; `grey`:
    as an 8-bit grey PNG at the figure's own dpi (for figures with no colour: a fraction of the size)."""
    import matplotlib.pyplot as plt
    try:
        with atomic_path(path) as tmp:
            if grey:
                fig.canvas.draw()
                rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
                Image.fromarray(rgb).convert("L").save(tmp, format="PNG", optimize=True)
            else:
                fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_model_options(ap)
    ap.add_argument("--n-faithful", type=int, default=1000, help="test images for the faithful mode")
    ap.add_argument("--n-curve", type=int, default=500, help="validation images per curve point (0: no curve)")
    ap.add_argument("--class-scales", type=int, default=0, metavar="N",
                    help="fit the class scales on N validation images after training, as "
                         "`abstain fit --abs-class-scales N` (0: none)")
    ap.add_argument("--fast-mode", choices=("fast", "checked"), default="fast",
                    help="the abstain mode measured against the faithful one (checked: the fast mode, "
                         "its close calls solved again by the faithful mode)")
    ap.add_argument("--check-margin", type=float, default=MODES["checked"].check_margin,
                    help="with --fast-mode checked: the logit gap below which an image is solved again "
                         "(abstain's checked mode: %(default)s)")
    ap.add_argument("--fast-lr", type=float, default=MODES["fast"].lr,
                    help="Adam learning rate of the fast mode measured here (abstain's fast mode: %(default)s)")
    ap.add_argument("--fast-steps", type=int, default=MODES["fast"].steps,
                    help="Adam steps of the fast mode measured here (abstain's fast mode: %(default)s)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cnn-run", default=str(HOME / "runs" / "mnist"), help="run whose CNN is compared on noise")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    if not (args.fast_lr > 0 and math.isfinite(args.fast_lr)):
        sys.exit(f"--fast-lr must be a positive number, got {args.fast_lr}")
    if args.check_margin != MODES["checked"].check_margin and args.fast_mode != "checked":
        sys.exit("--check-margin needs --fast-mode checked")
    if not (args.check_margin > 0 and math.isfinite(args.check_margin)):
        sys.exit(f"--check-margin must be a positive number, got {args.check_margin}")
    if args.fast_steps < 1:
        sys.exit(f"--fast-steps must be at least 1, got {args.fast_steps}")
    torch.set_num_threads(args.threads)
    model, training = model_from_args(args)
    data = load_dataset("mnist")
    # the scales are fitted after training and leave the weights alone, so the cached weights serve
    scales = fit_class_scales(model, data.x_val, data.y_val, max_images=args.class_scales) \
        if args.class_scales > 0 else None
    cnn_path = Path(args.cnn_run) / "classifier.safetensors"
    cnn = load_module(cnn_path, CNN, ClassifierConfig)[0] if cnn_path.exists() else None
    nf = args.n_faithful
    fast = replace(MODES[args.fast_mode], lr=args.fast_lr, steps=args.fast_steps)
    if args.fast_mode == "checked":
        fast = replace(fast, check_margin=args.check_margin)
    faithful = measure(model, MODES["faithful"], data.x_test[:nf], data.y_test[:nf])
    fast_same = measure(model, fast, data.x_test[:nf], data.y_test[:nf])
    # the same pass when the first N test images are all of them (measured once, reported twice)
    fast_all = dict(fast_same) if fast_same["n"] == len(data.y_test) else \
        measure(model, fast, data.x_test, data.y_test)
    # settings such as --finetune were chosen on validation images: their accuracy, beside the test's
    fast_val = measure(model, fast, data.x_val[:2000], data.y_val[:2000])
    # the curve (from which the fast mode was chosen) runs on validation images, not test images
    # (with the fast mode measured here among its points, marked in the plot)
    curve = [measure(model, inf, data.x_val[:args.n_curve], data.y_val[:args.n_curve])
             for inf in CURVE + ([] if fast in CURVE else [fast])] if args.n_curve > 0 else []
    noise = noise_confidence(model, cnn, make_ood("uniform_noise", n=2000, seed=0), fast)
    agree = float((faithful["pred"] == fast_same["pred"]).mean())
    # which test images each mode gets wrong (indices into the test set), so that models can be compared
    errors = {"faithful_errors": np.flatnonzero(faithful["pred"] != data.y_test[:nf]).tolist(),
              "fast_all_test_errors": np.flatnonzero(fast_all["pred"] != data.y_test).tolist()}
    for r in (faithful, fast_same, fast_all, fast_val, *curve):
        r.pop("pred"), r.pop("gap")
    res = {
        "command": f"python bench/abs_speed.py --epochs {args.epochs} --n-faithful {nf} --threads {args.threads}"
                   + "".join(f" --{k.replace('_', '-')} {getattr(args, k)}" for k in TRAIN_OPTIONS
                             if getattr(args, k) != getattr(RunConfig().abs_train, k))
                   + (" --with-val" if args.with_val else "")
                   + (f" --beta {args.beta:g}" if args.beta != RunConfig().abs.beta else "")
                   + (f" --finetune {args.finetune}" if args.finetune else "")
                   + (f" --finetune-weight {args.finetune_weight:g}"
                      if args.finetune_weight != RunConfig().abs.finetune_weight else "")
                   + (f" --finetune-mode {args.finetune_mode}" if args.finetune_mode else "")
                   + (f" --class-scales {args.class_scales}" if args.class_scales else "")
                   + (f" --fast-mode {args.fast_mode}" if args.fast_mode != "fast" else "")
                   # always with the checked mode: the default moved (0.002 before 2026-12-07)
                   + (f" --check-margin {args.check_margin:g}" if args.fast_mode == "checked" else "")
                   + f" --fast-lr {args.fast_lr:g}"   # always: the default moved (0.05 before 2026-11-25)
                   + (f" --fast-steps {args.fast_steps}" if args.fast_steps != MODES["fast"].steps else "")
                   + ("" if args.n_curve == 500 else f" --n-curve {args.n_curve}")
                   + ("" if args.out == DEFAULT_OUT else f" --out {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"),
        "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "machine": platform.machine(),
        "load_average_at_end": os.getloadavg(), "training": training, **model_record(args),
        "class_scales": scales,
        "fast_mode": args.fast_mode, "faithful": faithful, "fast_same_images": fast_same, "fast_all_test": fast_all,
        "fast_first_2000_validation": fast_val,
        # from the counts of right answers, so that 10 images in 10,000 read -0.1, not -0.10000000000000009
        "fast_minus_faithful_points": 100 * (round(fast_same["accuracy"] * fast_same["n"])
                                             - round(faithful["accuracy"] * faithful["n"])) / faithful["n"],
        "fast_faithful_agreement": agree,
        "speedup_fast_over_faithful": fast_same["images_per_second"] / faithful["images_per_second"],
        "uniform_noise_confidence": noise, "curve": curve,
        "cnn": str(cnn_path) if cnn is not None else None,
        **errors,
    }
    write_json(args.out, res)
    if curve:
        plot(curve, args.out.with_suffix(".png"), fast)
    print(f"faithful ({nf} images): {100 * faithful['accuracy']:.2f}%  {faithful['images_per_second']:.1f} img/s")
    print(f"fast     ({nf} images): {100 * fast_same['accuracy']:.2f}%  {fast_same['images_per_second']:.1f} img/s"
          f"  (x{res['speedup_fast_over_faithful']:.1f}); all 10,000: {100 * fast_all['accuracy']:.2f}%")
    print(f"uniform noise max confidence: ABS {noise['abs_fast_max']:.3f}"
          + (f", CNN {noise['cnn_max']:.3f}" if cnn is not None else ""))
    print(f"wrote {args.out}" + (f" and {args.out.with_suffix('.png')}" if curve else ""))


if __name__ == "__main__":
    main()
