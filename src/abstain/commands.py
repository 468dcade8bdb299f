"""The body of each CLI command: thin glue between arguments, the library and the terminal."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from .atomic import write_json
from .data.sources import abstain_home
from .errors import InputError
from .summary import overview


def _progress() -> bool:
    return os.environ.get("ABSTAIN_NO_PROGRESS") != "1"


def _load(run_dir: Path):
    from .run import load_run
    return load_run(run_dir)


def _write_json(path: Path, obj) -> None:
    try:
        write_json(path, obj)
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from exc


def _report(run, result, sets, out: Path) -> Path:
    from .report import build_report
    try:
        return build_report(run, result, sets, out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc


def cmd_fit(args) -> int:
    from dataclasses import replace

    from .run import RunConfig, fit_run
    base = RunConfig()
    both = {"seed": args.seed, "max_train": args.max_train}
    cfg = replace(base, dataset=args.dataset, detector=args.detector, accept=args.accept,
                  classifier_train=replace(base.classifier_train, epochs=args.epochs, **both),
                  vae_train=replace(base.vae_train, epochs=args.vae_epochs, **both))
    if not 0 < args.accept < 1:
        raise InputError(f"--accept must lie strictly between 0 and 1, got {args.accept}")
    t0 = time.time()
    run = fit_run(args.run, cfg, progress=_progress(), force=args.force)
    print(f"fitted {args.dataset} run in {run.path} ({time.time() - t0:.0f} s): "
          f"test accuracy {100 * run.info['test_accuracy']:.2f}%, guard {cfg.detector} "
          f">= {run.guard.threshold_:.4g}")
    return 0


def cmd_eval(args) -> int:
    from .evaluate import evaluate
    run = _load(args.run)
    ood = [s.strip() for s in args.ood.split(",") if s.strip()] if args.ood else None
    result, sets = evaluate(run, ood, progress=_progress(), limit=args.limit, attacks=args.attacks,
                            attack_steps=args.attack_steps)
    print(overview(result))
    if args.json:
        _write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.report:
        print(f"wrote report {_report(run, result, sets, args.report)}")
    return 0


def load_npy(path: Path) -> np.ndarray:
    from .tensors import as_images
    if not path.exists():
        raise InputError(f"{path}: no such file")
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{path}: not a readable .npy array ({exc})") from exc
    if not isinstance(arr, np.ndarray):
        raise InputError(f"{path}: expected a single .npy array, not an archive")
    return as_images(arr, str(path))


def cmd_attack(args) -> int:
    from .atomic import atomic_path
    from .attacks import AttackConfig, attack, predict
    images = load_npy(args.input)
    try:
        labels = np.load(args.labels, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"{args.labels}: not a readable .npy array ({exc})") from exc
    cfg = AttackConfig(name=args.attack, eps=args.eps, steps=args.steps, restarts=args.restarts, seed=args.seed)
    run = _load(args.run)
    adv = attack(run.classifier, images, labels, cfg, progress=_progress())
    fooled = float(np.mean(predict(run.classifier, adv) != labels))
    try:
        with atomic_path(args.out) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, adv)
    except OSError as exc:
        raise InputError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    print(f"{args.attack} eps={args.eps:g}: {len(adv)} images, success rate {100 * fooled:.1f}%; wrote {args.out}")
    return 0


def cmd_purify(args) -> int:
    from .purify import PurifyConfig, purification_table
    if args.n < 1 or args.steps < 1:
        raise InputError("--n and --steps must be at least 1")
    run = _load(args.run)
    table = purification_table(run, n=args.n, cfg=PurifyConfig(steps=args.steps, lr=args.lr, nu=args.nu),
                               attack_steps=args.attack_steps, progress=_progress())
    print(f"{'set':<12}{'before':>9}{'after':>9}{'fixed':>7}{'broken':>8}")
    for name, r in table["results"].items():
        print(f"{name:<12}{100 * r['accuracy_before']:>8.1f}%{100 * r['accuracy_after']:>8.1f}%"
              f"{r['fixed']:>7}{r['broken']:>8}")
    if args.json:
        _write_json(args.json, table)
        print(f"wrote {args.json}")
    return 0


def cmd_score(args) -> int:
    images = load_npy(args.input)
    run = _load(args.run)
    verdicts = run.guard.check(images)
    out = {"detectors": list(run.guard.detectors), "guard": {"detector": run.guard.detector,
                                                            "threshold": run.guard.threshold_},
           "images": [{"class": v.label, "confidence": v.confidence, "verdict": v.verdict,
                       "scores": v.scores} for v in verdicts]}
    _write_json(args.json, out)
    n_acc = sum(v.verdict == "accept" for v in verdicts)
    print(f"scored {len(verdicts)} images: {n_acc} accepted, {len(verdicts) - n_acc} abstained; wrote {args.json}")
    return 0


def cmd_check(args) -> int:
    from .data.mnistify import mnistify
    images = np.stack([mnistify(p) for p in args.images])
    run = _load(args.run)
    verdicts = run.guard.check(images)
    for path, v in zip(args.images, verdicts):
        print(f"{path}: {v.verdict.upper():8} class {v.class_name} (confidence {v.confidence:.3f}) - {v.reason}")
    if args.json:
        _write_json(args.json, [{"image": str(p), **v.to_dict()} for p, v in zip(args.images, verdicts)])
    return 0


def cmd_demo(args) -> int:
    from .evaluate import evaluate
    from .run import RunConfig, fit_run
    t0 = time.time()
    run_dir = args.run or abstain_home() / "runs" / "mnist"
    print(f"abstain demo: MNIST run in {run_dir} (reused when valid)")
    run = fit_run(run_dir, RunConfig(), progress=_progress(), force=args.force)
    result, sets = evaluate(run, progress=_progress(), attacks=args.attacks)
    _write_json(run.path / "eval.json", result)
    print(overview(result))
    report = _report(run, result, sets, run.path / "report.html")
    print(f"\nwrote {run.path / 'eval.json'}\nreport: {report}\ndemo took {time.time() - t0:.0f} s")
    return 0
