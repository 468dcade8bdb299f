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


def _workers(args) -> int | None:
    if args.workers is not None and args.workers < 1:
        raise InputError(f"--workers must be at least 1, got {args.workers}")
    return args.workers


def _load(run_dir: Path):
    from .run import load_run
    return load_run(run_dir)


#: the options naming a file a command writes
OUTPUT_OPTIONS = ("json", "report", "out", "explain_png")


def check_outputs(args) -> None:
    """Fail, before any work, on an output path no write can succeed at: a directory, or a path
    under a file. A robustness run once computed for its whole budget and then failed to write."""
    for name in OUTPUT_OPTIONS:
        path = getattr(args, name, None)
        if path is None:
            continue
        option = f"--{name.replace('_', '-')}"
        if path.is_dir():
            raise InputError(f"{option} {path}: is a directory; name a file to write")
        folder = path.parent
        while not folder.exists():          # the nearest existing folder above it (created on write)
            folder = folder.parent
        if not folder.is_dir():
            raise InputError(f"{option} {path}: {folder} is a file, not a folder")


def _write_file(out: Path, write):
    """`write(out)` (JSON, a report page, a PNG); an OS error becomes the one-line InputError."""
    try:
        return write(out)
    except OSError as exc:
        raise InputError(f"cannot write {out}: {exc.strerror or exc}") from exc


def _write_json(path: Path, obj) -> None:
    _write_file(path, lambda out: write_json(out, obj))


def _report(run, result, sets, out: Path) -> Path:
    from .report import build_report
    return _write_file(out, lambda path: build_report(run, result, sets, path))


def _union_spec(tokens: list[str]) -> dict[str, float]:
    """["msp=0.8", "complexity=0.2"] -> {"msp": 0.8, "complexity": 0.2} (`abstain fit --union`)."""
    spec = {}
    for token in tokens:
        name, sep, share = token.partition("=")
        try:
            value = float(share)
        except ValueError:
            value = None
        if not sep or not name or value is None:
            raise InputError(f"--union: expected PART=SHARE (e.g. msp=0.8), got {token!r}")
        if name in spec:
            raise InputError(f"--union: {name} given twice")
        spec[name] = value
    return spec


def _check_fit_flags(args, base) -> None:
    """One InputError naming the first bad `abstain fit` flag (`base`: the dataset's defaults)."""
    if not 0 < args.accept < 1:
        raise InputError(f"--accept must lie strictly between 0 and 1, got {args.accept}")
    if args.max_train is not None and args.max_train < 1:
        raise InputError(f"--max-train must be at least 1, got {args.max_train}")
    if args.abs_class_scales < 0:
        raise InputError(f"--abs-class-scales must be >= 0, got {args.abs_class_scales}")
    if args.abs_finetune < 0:
        raise InputError(f"--abs-finetune must be >= 0, got {args.abs_finetune}")
    if not 0 <= args.abs_finetune_weight < float("inf"):
        raise InputError(f"--abs-finetune-weight must be >= 0, got {args.abs_finetune_weight}")
    for flag, changed in (("--abs-finetune-weight", args.abs_finetune_weight != base.abs.finetune_weight),
                          ("--abs-finetune-mode", args.abs_finetune_mode != base.abs.finetune_mode)):
        if changed and args.abs_finetune == 0:
            raise InputError(f"{flag} needs --abs-finetune STEPS (it sets how that finetuning runs)")
    if args.abs_patience < 1:
        raise InputError(f"--abs-patience must be at least 1, got {args.abs_patience}")
    if not 0 <= args.background_mutation < 1:
        raise InputError(f"--background-mutation must lie in [0, 1), got {args.background_mutation}")
    for flag in ("epochs", "vae_epochs", "background_epochs", "abs_epochs"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            raise InputError(f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}")
    if args.seed < 0:
        raise InputError(f"--seed must be >= 0, got {args.seed}")
    if args.abs_seed is not None and args.abs_seed < 0:
        raise InputError(f"--abs-seed must be >= 0, got {args.abs_seed}")
    if not 0 <= args.abs_beta < float("inf"):
        raise InputError(f"--abs-beta must be >= 0, got {args.abs_beta}")
    if not 0 <= args.background_weight_decay < float("inf"):
        raise InputError(f"--background-weight-decay must be >= 0, got {args.background_weight_decay}")


def cmd_fit(args) -> int:
    from dataclasses import replace

    from .run import RunConfig, fit_run
    base = RunConfig.for_dataset(args.dataset)
    _check_fit_flags(args, base)
    both = {"seed": args.seed, "max_train": args.max_train}
    epochs = base.classifier_train.epochs if args.epochs is None else args.epochs
    abs_seed = args.seed if args.abs_seed is None else args.abs_seed
    if args.union is not None:
        base = base.with_union(_union_spec(args.union))
    cfg = replace(base, detector=args.detector, accept=args.accept,
                  vae=replace(base.vae, likelihood=args.vae_likelihood),
                  classifier_train=replace(base.classifier_train, epochs=epochs, **both),
                  vae_train=replace(base.vae_train, epochs=args.vae_epochs, **both),
                  background=replace(base.background, mutation=args.background_mutation),
                  background_train=replace(base.background_train, epochs=args.background_epochs,
                                           weight_decay=args.background_weight_decay, **both),
                  abs=replace(base.abs, beta=args.abs_beta, scale_fit_images=args.abs_class_scales,
                              finetune_steps=args.abs_finetune, finetune_weight=args.abs_finetune_weight,
                              finetune_mode=args.abs_finetune_mode),
                  abs_train=replace(base.abs_train, epochs=args.abs_epochs, patience=args.abs_patience,
                                    **{**both, "seed": abs_seed}),
                  abs_train_images="train+val" if args.abs_with_val else "train")
    t0 = time.time()
    run = fit_run(args.run, cfg, progress=_progress(), force=args.force, workers=_workers(args))
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


def cmd_likelihood(args) -> int:
    from .likelihood import likelihood_table
    from .summary import likelihood_overview
    fashion = _load(args.run)
    mnist = _load(args.mnist_run) if args.mnist_run else None
    result, sets = likelihood_table(fashion, mnist, limit=args.limit, progress=_progress())
    print(likelihood_overview(result))
    if args.json:
        _write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.report:
        from .report.likelihood import write_likelihood_report
        print(f"wrote report {_write_file(args.report, lambda out: write_likelihood_report(result, sets, out))}")
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


def _images(n: int) -> str:
    """'1 image', '5 images': the count in a command's summary line."""
    return f"{n} image{'' if n == 1 else 's'}"


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
    print(f"{args.attack} eps={args.eps:g}: {_images(len(adv))}, success rate {100 * fooled:.1f}%; wrote {args.out}")
    return 0


def cmd_purify(args) -> int:
    from .purify import PurifyConfig, purification_table
    if args.n < 1 or args.steps < 1 or args.attack_steps < 1:
        raise InputError("--n, --steps and --attack-steps must be at least 1")
    if not 0 < args.lr < float("inf") or not 0 <= args.nu < float("inf"):
        raise InputError(f"--lr must be positive and --nu >= 0, got --lr {args.lr} --nu {args.nu}")
    cfg = PurifyConfig(steps=args.steps, lr=args.lr, nu=args.nu)
    run = _load(args.run)
    table = purification_table(run, n=args.n, cfg=cfg, attack_steps=args.attack_steps, progress=_progress())
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
    if args.classifier == "abs":
        from .detectors.abs import abs_predict
        _, probs = abs_predict(run.require_abs(), images, args.abs_mode)
        out["abs_mode"] = args.abs_mode
        for entry, p in zip(out["images"], probs):
            entry["abs_class"], entry["abs_confidence"] = int(p.argmax()), float(p.max())
    _write_json(args.json, out)
    n_acc = sum(v.verdict == "accept" for v in verdicts)
    n = len(verdicts)
    print(f"scored {_images(n)}: {n_acc} accepted, {n - n_acc} abstained; wrote {args.json}")
    return 0


def cmd_check(args) -> int:
    from .data.mnistify import mnistify
    images = np.stack([mnistify(p) for p in args.images])
    run = _load(args.run)
    verdicts = run.guard.check(images)
    entries = [{"image": str(p), **v.to_dict()} for p, v in zip(args.images, verdicts)]
    recs = None
    if args.explain or args.explain_png:
        recs = _explain(run, images, entries, args.abs_mode)
    for i, (path, v) in enumerate(zip(args.images, verdicts)):
        print(f"{path}: {v.verdict.upper():8} class {v.class_name} (confidence {v.confidence:.3f}) - {v.reason}")
        if recs is not None:
            from .explain import explain_text
            a = entries[i]["abs"]
            symbol = "al" if a["scaled"] else "l"
            print(f"  ABS ({args.abs_mode}): class {a['class_name']} (confidence {a['confidence']:.3f}); "
                  f"each class's best reconstruction, loss {symbol}"
                  + (" (loss l times its fitted class scale a)" if a["scaled"] else "")
                  + " (lower = explains it better):")
            print(explain_text(images[i] / 255.0, recs[i], np.asarray(a["losses"]), run.guard.class_names,
                               symbol=symbol))
    if args.json:
        _write_json(args.json, entries)
    png = args.explain_png or (args.json.with_suffix(".abs.png") if args.json and recs is not None else None)
    if recs is not None and png:
        from .explain import write_explain_png
        print(f"wrote {_write_file(png, lambda out: write_explain_png(out, images / 255.0, recs))}")
    return 0


def _explain(run, images: np.ndarray, entries: list[dict], mode: str) -> np.ndarray:
    """Add ABS's class, confidence and per-class losses to each entry (a_y l_y, with "scaled"
    true, when the run's ABS has fitted class scales); returns the per-class reconstructions
    (N, C, 28, 28). One ABS solve gives both."""
    from .detectors.abs import abs_explain
    model = run.require_abs()
    logits, probs, recs = abs_explain(model, images, mode)
    scaled = bool((model.class_scale != 1).any())       # losses are then a_y l_y, not l_y
    for entry, lg, p in zip(entries, logits, probs):
        c = int(p.argmax())
        entry["abs"] = {"class": c, "class_name": run.guard.class_names[c], "confidence": float(p.max()),
                        "mode": mode, "losses": [float(v) for v in -lg], "scaled": scaled}
    return recs


def cmd_probe(args) -> int:
    from .probes import PairConfig, format_summary, run_probes
    if args.n < 1 or args.epochs < 1:
        raise InputError("--n and --epochs must be at least 1")
    sweeps = [s.strip() for s in args.sweeps.split(",") if s.strip()] if args.sweeps else None
    pair = PairConfig(epochs=args.epochs, vae_epochs=args.epochs, seed=args.seed)
    run = _load(args.run)
    try:
        result = run_probes(run, n=args.n, seed=args.seed, sweeps=sweeps, progress=_progress(), pair=pair,
                            all_detectors=args.all_detectors, classifier=args.classifier)
    except OSError as exc:
        raise InputError(f"probe: {exc.strerror or exc} ({exc.filename}); the 1-vs-7 net is cached in "
                         f"{run.path / 'probes'}, which must be writable") from exc
    print(format_summary(result))
    if args.json:
        _write_json(args.json, result)
        print(f"wrote {args.json}")
    if args.report:
        from .report.probes import build_probe_report
        print(f"wrote report {_write_file(args.report, lambda out: build_probe_report(result, out))}")
    return 0


def cmd_robustness(args) -> int:
    from dataclasses import replace

    from .robustness import RobustnessConfig, parse_models, robustness
    from .robustness.summary import format_robustness
    over = {k: v for k, v in (("steps", args.steps), ("restarts", args.restarts),
                              ("search_steps", args.search_steps)) if v is not None}
    if args.n < 1 or any(v < (0 if k == "restarts" else 1) for k, v in over.items()):
        raise InputError("--n, --steps and --search-steps must be at least 1, --restarts at least 0")
    base = RobustnessConfig()
    cfg = replace(base, n=args.n, seed=args.seed, fast=replace(base.fast, **over),
                  slow=replace(base.slow, **over), abs_mode=args.abs_mode)
    run = _load(args.run)
    names = parse_models(args.models, run)
    t0 = time.time()
    result, arrays = robustness(run, names, cfg, progress=_progress())
    result["settings"]["seconds"] = round(time.time() - t0, 1)
    _write_json(args.json, result)
    print(format_robustness(result))
    print(f"wrote {args.json} ({result['settings']['seconds']:.0f} s)")
    if args.report:
        from .report.robustness import build_robustness_report
        print(f"wrote report {_write_file(args.report, lambda out: build_robustness_report(result, arrays, out))}")
    return 0


def cmd_demo(args) -> int:
    from .evaluate import evaluate
    from .run import RunConfig, fit_run
    t0 = time.time()
    if args.attacks < 0:
        raise InputError(f"--attacks is a number of test images (0 = none), got {args.attacks}")
    run_dir = args.run or abstain_home() / "runs" / "mnist"
    print(f"abstain demo: MNIST run in {run_dir} (reused when valid)")
    run = fit_run(run_dir, RunConfig.for_dataset("mnist"), progress=_progress(), force=args.force,
                  workers=_workers(args))
    t_fit = time.time()
    result, sets = evaluate(run, progress=_progress(), attacks=args.attacks)
    _write_json(run.path / "eval.json", result)
    t_eval = time.time()
    print(overview(result))
    report = _report(run, result, sets, run.path / "report.html")
    t_end = time.time()
    # the stage split is read by bench/demo_time.py: keep the format
    print(f"\nwrote {run.path / 'eval.json'}\nreport: {report}\ndemo took {t_end - t0:.0f} s "
          f"(fit {t_fit - t0:.0f} s, evaluation {t_eval - t_fit:.0f} s, report {t_end - t_eval:.0f} s)")
    return 0
