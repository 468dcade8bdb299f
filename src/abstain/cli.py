"""`abstain` command line: parse, call the library, print. Errors end in one line, exit 2."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import AbstainError

log = logging.getLogger("abstain")


class _Parser(argparse.ArgumentParser):
    """argparse with usage errors in one line, like every other bad input (exit 2); subcommand
    parsers inherit it."""

    def error(self, message):
        self.exit(2, f"abstain: error: {message} (see `{self.prog} --help`)\n")


def _add_run(p, required=True):
    p.add_argument("--run", required=required, type=Path, metavar="DIR", help="run directory")


def _add_workers(p):
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="train the models in N processes side by side (default: as many as keep 2 "
                        "threads each, so one on a 2-core machine; 1 = one after another in this process)")


def _demo(sub, base) -> None:
    p = sub.add_parser("demo", help="fit (or reuse) the MNIST run, evaluate it, print the tables, write the report")
    p.add_argument("--run", type=Path, metavar="DIR", help="run directory (default $ABSTAIN_HOME/runs/mnist)")
    p.add_argument("--force", action="store_true", help="refit even if a valid run exists")
    p.add_argument("--attacks", type=int, default=200, metavar="N",
                   help="attack N correctly classified test images (FGSM / BIM / PGD / PGD-L2); 0 = skip")
    _add_workers(p)


def _fit(sub, base) -> None:
    from .run import RunConfig
    p = sub.add_parser("fit", help="train the classifier and VAE, fit every detector, calibrate the guard")
    p.add_argument("--dataset", default="mnist", choices=["mnist", "fashion_mnist"], help="training data")
    _add_run(p)
    p.add_argument("--detector", default=base.detector, choices=sorted(base.instances()), help="the guard's detector")
    _add_workers(p)
    p.add_argument("--accept", type=float, default=base.accept, help="share of validation images the guard accepts")
    p.add_argument("--union", nargs="+", metavar="PART=SHARE", default=None,
                   help="the union guard's parts and their shares of the rejections (default for mnist "
                        "msp=0.95 mahalanobis_layers_centred=0.05, for fashion_mnist msp=0.8 "
                        "mahalanobis_layers=0.2; docs/probes.md measures others)")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"classifier epochs (default {base.classifier_train.epochs}; "
                        f"{RunConfig.for_dataset('fashion_mnist').classifier_train.epochs} for fashion_mnist)")
    p.add_argument("--vae-epochs", type=int, default=base.vae_train.epochs, help="VAE epochs")
    p.add_argument("--vae-likelihood", default=base.vae.likelihood, choices=["bernoulli", "logistic"],
                   help="VAE pixel likelihood: Bernoulli on grey levels, or discretised logistic (bits/dim)")
    p.add_argument("--background-mutation", type=float, default=base.background.mutation, metavar="MU",
                   help="llr background VAE: share of pixels replaced by uniform noise")
    p.add_argument("--background-epochs", type=int, default=base.background_train.epochs,
                   help="llr background VAE epochs")
    p.add_argument("--background-weight-decay", type=float, default=base.background_train.weight_decay,
                   metavar="LAMBDA", help="llr background VAE: L2 weight decay (Adam)")
    _add_abs_training(p, base)
    p.add_argument("--max-train", type=int, default=None,
                   help="use only the first N training images (to train the models and fit the detectors)")
    p.add_argument("--seed", type=int, default=base.classifier_train.seed, help="random seed")
    p.add_argument("--force", action="store_true",
                   help="delete DIR and refit from scratch (refused when DIR holds files a run does not write)")


def _add_abs_training(p, base) -> None:
    """`abstain fit`'s flags for ABS's ten class VAEs and their finetuning."""
    from .models.abs_modes import FINETUNE_MODES
    p.add_argument("--abs-epochs", type=int, default=base.abs_train.epochs,
                   help="epochs of the ten ABS class VAEs (10 = the reference's training)")
    p.add_argument("--abs-beta", type=float, default=base.abs.beta, metavar="BETA",
                   help="ABS class VAEs: weight of the KL term in the training loss")
    p.add_argument("--abs-class-scales", type=int, default=base.abs.scale_fit_images, metavar="N",
                   help="fit ABS's per-class loss scales on N validation images (the reference's "
                        "discriminative finetuning; 0 = none)")
    p.add_argument("--abs-finetune", type=int, default=base.abs.finetune_steps, metavar="STEPS",
                   help="then finetune ABS's ten decoders discriminatively for STEPS steps of 100 "
                        "training images (beyond the reference; 0 = none)")
    p.add_argument("--abs-finetune-weight", type=float, default=base.abs.finetune_weight, metavar="W",
                   help="weight of the cross-entropy in that finetuning (default %(default)s)")
    p.add_argument("--abs-finetune-mode", choices=FINETUNE_MODES, default=base.abs.finetune_mode,
                   help="find the latents in that finetuning with this ABS mode's inference (default: "
                        "1,000 prototypes and 10 steps on the best 3 classes)")
    p.add_argument("--abs-patience", type=int, default=base.abs_train.patience, metavar="EPOCHS",
                   help="stop ABS's training after this many epochs without a lower validation loss "
                        "(default %(default)s)")
    p.add_argument("--abs-seed", type=int, default=None, metavar="SEED",
                   help="seed of ABS's initial weights, batches and finetuning (default: --seed)")
    p.add_argument("--abs-with-val", action="store_true",
                   help="train ABS on the training and validation images (the reference's 60,000); the "
                        "abs detector and the guard are then calibrated on images ABS has seen")


def _eval(sub, base) -> None:
    p = sub.add_parser("eval", help="evaluate a run on the test set and the OOD suite")
    _add_run(p)
    p.add_argument("--ood", default=None, help="comma-separated OOD set names (default: the whole suite)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N images of each set")
    p.add_argument("--attacks", type=int, default=0, metavar="N",
                   help="attack N correctly classified test images with FGSM / BIM / PGD / PGD-L2 (0 = skip)")
    p.add_argument("--attack-steps", type=int, default=20, metavar="S", help="steps of the iterative attacks")
    p.add_argument("--report", type=Path, metavar="FILE", help="also write the HTML report")


def _likelihood(sub, base) -> None:
    p = sub.add_parser("likelihood", help="the likelihood trap of a FashionMNIST run and the fixes, one table")
    _add_run(p)
    p.add_argument("--mnist-run", type=Path, metavar="DIR", help="an MNIST run for the MNIST -> FashionMNIST column")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use only the first N images of each set")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the table as JSON")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the HTML page (histogram, table)")


def _attack(sub, base) -> None:
    p = sub.add_parser("attack", help="write adversarial versions of an N x 28 x 28 .npy array")
    _add_run(p)
    p.add_argument("--attack", default="pgd", choices=["fgsm", "bim", "pgd", "pgd_l2"],
                   help="attack (default: %(default)s)")
    p.add_argument("--eps", type=float, required=True, help="L-infinity (fgsm/bim/pgd) or L2 (pgd_l2) budget")
    p.add_argument("--steps", type=int, default=40, help="steps of bim / pgd / pgd_l2 (default: %(default)s)")
    p.add_argument("--restarts", type=int, default=1, help="random restarts of pgd / pgd_l2 (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--input", required=True, type=Path, metavar="X.npy", help="images, uint8 0-255 or float 0-1")
    p.add_argument("--labels", required=True, type=Path, metavar="Y.npy", help="their true labels")
    p.add_argument("--out", required=True, type=Path, metavar="ADV.npy", help="where to write the float32 images")


def _purify(sub, base) -> None:
    p = sub.add_parser("purify", help="move features toward higher gmm density; accuracy before / after")
    _add_run(p)
    p.add_argument("--n", type=int, default=500, help="number of test images (clean and attacked)")
    p.add_argument("--steps", type=int, default=100, help="gradient steps on each feature")
    p.add_argument("--lr", type=float, default=0.01, help="Adam step size")
    p.add_argument("--nu", type=float, default=1.0, help="weight of the pull back to the extracted feature")
    p.add_argument("--attack-steps", type=int, default=20, help="steps of the iterative attacks")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the table as JSON")


def _score(sub, base) -> None:
    from .models.abs_modes import CLASSIFY_MODES
    p = sub.add_parser("score", help="score an N x 28 x 28 .npy array with every detector and the guard")
    _add_run(p)
    p.add_argument("--input", required=True, type=Path, metavar="FILE.npy", help="uint8 0-255 or float 0-1")
    p.add_argument("--json", required=True, type=Path, metavar="FILE", help="where to write the scores")
    p.add_argument("--classifier", default="cnn", choices=["cnn", "abs"],
                   help="abs: also classify with analysis by synthesis (abs_class, abs_confidence per image)")
    p.add_argument("--abs-mode", default="fast", choices=CLASSIFY_MODES,
                   help="ABS inference for --classifier abs (checked: fast, its close calls solved again; faithful: 8,000 prototypes + 50 Adam steps)")


def _check(sub, base) -> None:
    from .models.abs_modes import CLASSIFY_MODES
    p = sub.add_parser("check", help="MNIST-ify image files and say accept / abstain for each")
    _add_run(p)
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="image files (png, jpg, ...)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the verdicts as JSON")
    p.add_argument("--explain", action="store_true",
                   help="show the ten ABS class reconstructions of each image (text; PNG next to --json)")
    p.add_argument("--explain-png", type=Path, metavar="FILE", help="write the --explain grid to this PNG")
    p.add_argument("--abs-mode", default="fast", choices=CLASSIFY_MODES,
                   help="ABS inference for --explain (checked: fast, its close calls solved again; faithful: 8,000 prototypes + 50 Adam steps)")


def _probe(sub, base) -> None:
    p = sub.add_parser("probe", help="shortcut and invariance probes: 1-vs-7, sweeps on test digits, shapes",
                       description="Probe what the classifier looks for, with the guard's verdict beside its "
                       "confidence. With the defaults (1,000 test digits per sweep step) the sweeps take "
                       "a few minutes on 2 CPU cores for an MNIST run; the 1-vs-7 net is trained once, "
                       "then cached.")
    _add_run(p)
    p.add_argument("--n", type=int, default=1000, metavar="N", help="test digits per sweep step (default 1000)")
    p.add_argument("--sweeps", default=None, metavar="NAMES",
                   help="comma-separated sweeps (default: translate_x, translate_y, rotate, scale, "
                   "thickness, invert, noise)")
    p.add_argument("--epochs", type=int, default=3, metavar="E",
                   help="epochs of the 1-vs-7 classifier and its VAE (cached in DIR/probes/one_vs_seven)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled test digits and the 1-vs-7 net")
    p.add_argument("--classifier", default="cnn", choices=["cnn", "abs"],
                   help="the classifier judged: the run's CNN, or its ABS model (fast inference; the "
                   "1-vs-7 experiment then trains a two-class ABS)")
    p.add_argument("--all-detectors", action="store_true",
                   help="score every detector along the sweeps, input-space ones too (VAE, llr, abs: much "
                   "slower); default: the guard's and the logit / feature detectors")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    p.add_argument("--report", type=Path, metavar="FILE", help="write the probes as a standalone HTML page")


def _robustness(sub, base) -> None:
    from .models.abs_modes import ATTACK_MODES
    p = sub.add_parser("robustness", help="minimal adversarial perturbations (L2, L-inf), accuracy-vs-eps "
                       "curves, noise check and distal images of the CNN, an adversarially trained CNN and ABS",
                       description="Attack each model with every attack we have (noise, decision-based "
                       "lines, FGSM line search, eps bisection with BIM and PGD with restarts) and keep, per "
                       "image, the smallest perturbation that fools it. Defaults: 11 to 31 minutes on 2 CPU "
                       "cores for the four models at n=200, madry training included (the five default runs "
                       "measured, README). ABS models, attacked in their fast inference, get the smaller "
                       "budget.")
    _add_run(p)
    p.add_argument("--json", required=True, type=Path, metavar="FILE", help="write the result as JSON")
    p.add_argument("--n", type=int, default=200, metavar="N", help="test images attacked (default 200)")
    p.add_argument("--models", default=None, metavar="NAMES",
                   help="comma-separated: cnn, madry, abs, binary_abs (default: cnn, madry and the ABS "
                   "pair when the run has an ABS model)")
    p.add_argument("--steps", type=int, default=None, metavar="S",
                   help="BIM / PGD steps per eps probe (default 20; ABS models 10)")
    p.add_argument("--restarts", type=int, default=None, metavar="R",
                   help="PGD random restarts after BIM (default 1; ABS models 0)")
    p.add_argument("--search-steps", type=int, default=None, metavar="B",
                   help="bisection probes on eps per norm (default 8; ABS models 6)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test images, the noise and the restarts")
    p.add_argument("--abs-mode", default="fast", choices=ATTACK_MODES,
                   help="the ABS inference attacked (default fast; faithful is about 20x slower)")
    p.add_argument("--report", type=Path, metavar="FILE", help="also write a standalone HTML page")


def build_parser() -> argparse.ArgumentParser:
    from .run import RunConfig
    parser = _Parser(prog="abstain", description="Make image classifiers know what they don't know.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    base = RunConfig()
    for add in (_demo, _fit, _eval, _likelihood, _attack, _purify, _score, _check, _probe, _robustness):
        add(sub, base)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (one line already printed) or --help
        return exc.code if isinstance(exc.code, int) else 2
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    if args.command is None:
        parser.print_help()
        return 2
    from . import commands
    try:
        commands.check_outputs(args)
        return getattr(commands, f"cmd_{args.command}")(args)
    except AbstainError as exc:
        print(f"abstain: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("abstain: interrupted; nothing half-written was left behind", file=sys.stderr)
        return 130
    except BrokenPipeError:  # whoever read our output stopped (`abstain check ... | head`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:                 # point stdout at /dev/null so the exit's own flush fails no more
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):  # no real stdout (a test runner's capture)
            pass
        finally:
            os.close(devnull)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
