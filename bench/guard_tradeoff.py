"""Can a `union` guard meet the probes' correlation goal and still turn away OOD inputs and attacks?

Usage: python bench/guard_tradeoff.py [--run DIR] [--partners NAME ...] [--shares 0.5 0.8 ... 0.999]
                                      [--n 1000] [--attacks 200] [--out FILE]

For every guard union(msp, partner) with msp's share s and the partner's 1 - s (and msp alone),
built from the run's fitted detectors and calibrated as the run's guard is (to accept the run's
share, 95%, of the validation digits):

* ``correlation``: Pearson correlation between the guard's abstention rate and the classifier's
  error rate along the translate x / translate y / rotate sweeps of `abstain probe`, on n
  validation digits (where a choice of guard would be made) and on the n test digits `abstain
  probe` uses (seed 0; the goal of the probes issue is >= 0.9 on all three);
* ``accepted``: the share of each set the guard lets through: test digits, the classifier's test
  mistakes, the run's OOD suite (as `abstain eval`) and the successful attacks on the first
  `--attacks` correctly classified test digits (the attacks of `abstain eval --attacks N`, 20
  steps, read from the run's cache when eval made them).

Prints a table and writes bench/results/guard_tradeoff.json and .png (correlation and leaks
and what passes against msp's share, one line per partner).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from abstain.atomic import atomic_path, write_json
from abstain.attacks import predict
from abstain.detectors.union import Union
from abstain.errors import AbstainError
from abstain.evaluate import load_set, suite_names
from abstain.failures import column_name, eval_attack
from abstain.metrics import threshold_at
from abstain.probes.sweeps import SWEEPS, pearson, sample_images
from abstain.run import load_run

ROOT = Path(__file__).resolve().parents[1]
HOME = Path(os.environ.get("ABSTAIN_HOME", Path.home() / ".cache/abstain"))
SWEPT = ("translate_x", "translate_y", "rotate")
PARTNERS = ("mahalanobis_layers", "gmm", "knn", "mahalanobis", "vae_elbo", "llr", "complexity", "abs")
ATTACKS = (("fgsm", 0.1), ("fgsm", 0.3), ("pgd", 0.1), ("pgd", 0.2), ("pgd", 0.3), ("pgd_l2", 1.0), ("pgd_l2", 2.0))


def sweep_scores(guard, names, x, y, bar) -> dict:
    """{sweep: [(scores of every named detector, classifier accuracy) per step]}."""
    out = {}
    for sw in SWEPT:
        steps = []
        for value in SWEEPS[sw].values:
            scores, logits = guard.scores(SWEEPS[sw].apply(x, value), names)
            steps.append((scores, float(np.mean(logits.argmax(1) == y))))
            bar.update(1)
        out[sw] = steps
    return out


def failure_sets(run, names, n_attacks: int) -> dict:
    """{set name: scores of every named detector}: test, mistakes, the OOD suite, attacks."""
    g, data = run.guard, run.dataset
    test, logits = g.scores(data.x_test, names)
    wrong = logits.argmax(1) != data.y_test
    sets = {"test": test, "mistakes": {k: v[wrong] for k, v in test.items()}}
    for name in tqdm(suite_names(run.config.dataset), desc="OOD sets", leave=False):
        sets[name] = g.scores(load_set(name, run)[0], names)[0]
    correct = np.flatnonzero(~wrong)[:n_attacks]
    x, y = data.x_test[correct], data.y_test[correct]
    for attack, eps in tqdm(ATTACKS, desc="attacks", leave=False):
        col = column_name(attack, eps)
        adv = eval_attack(run, x, y, attack, eps)
        fooled = predict(run.classifier, adv) != y
        sets[f"{col} ({100 * fooled.mean():.0f}% fooled)"] = g.scores(adv[fooled], names)[0]
    return sets


def judge(parts, shares, val, sweeps, sets, accept) -> dict:
    """One guard: its correlations along every sweep of every split and what each set passes."""
    def cols(scores):
        return np.column_stack([scores[p] for p in parts])
    union = Union(parts, shares).fit(cols(val))
    t = threshold_at(union.score_samples(cols(val)), accept)

    def passes(scores):
        return union.score_samples(cols(scores)) >= t
    corr = {split: {sw: pearson([1 - passes(s).mean() for s, _ in steps], [1 - a for _, a in steps])
                    for sw, steps in per.items()} for split, per in sweeps.items()}
    return {"parts": list(parts), "shares": list(shares), "correlation": corr,
            "accepted": {name: float(passes(s).mean()) for name, s in sets.items()}}


def plot(rows, partners, other: str, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    attack_keys = [k for k in rows[0]["accepted"] if "fooled" in k]
    for p in partners:
        mine = sorted((r for r in rows if r["parts"] == ["msp", p]), key=lambda r: r["shares"][0])
        s = [r["shares"][0] for r in mine]
        ax[0].plot(s, [min(r["correlation"]["val"].values()) for r in mine], "o-", label=p)
        ax[1].plot(s, [100 * max(r["accepted"][k] for k in attack_keys) for r in mine], "o-", label=p)
        ax[2].plot(s, [100 * r["accepted"][other] for r in mine], "o-", label=p)
    alone = next(r for r in rows if r["parts"] == ["msp"])
    for a, v in zip(ax, (min(alone["correlation"]["val"].values()),
                         100 * max(alone["accepted"][k] for k in attack_keys), 100 * alone["accepted"][other])):
        a.axhline(v, color="k", ls=":", label="msp alone")
        a.set_xlabel("msp's share of the rejections")
    ax[0].axhline(0.9, color="r", ls="--", label="goal 0.9")
    ax[0].set_ylabel("lowest correlation, translate x / y / rotate (validation)")
    ax[1].set_ylabel("% of successful attacks accepted (worst attack)")
    ax[2].set_ylabel(f"% of {other} accepted")
    ax[0].legend(fontsize=7)
    fig.suptitle("union(msp, partner): tracking the classifier's errors vs turning away attacks")
    fig.tight_layout()
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default=str(HOME / "runs" / "mnist"))
    ap.add_argument("--partners", nargs="+", default=list(PARTNERS))
    ap.add_argument("--shares", type=float, nargs="+", default=[0.5, 0.8, 0.9, 0.95, 0.98, 0.99, 0.995, 0.999],
                    help="msp's shares to try (the partner gets 1 - share)")
    ap.add_argument("--n", type=int, default=1000, help="digits per sweep step")
    ap.add_argument("--attacks", type=int, default=200, help="correctly classified test digits attacked")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "guard_tradeoff.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        run = load_run(args.run)
    except AbstainError as exc:
        raise SystemExit(f"error: {exc}")
    g, data = run.guard, run.dataset
    missing = [p for p in args.partners if p not in g.detectors or g.detectors[p].input == "scores"]
    if missing:
        raise SystemExit(f"error: not detectors of this run: {', '.join(missing)}")
    bad = [s for s in args.shares if not 0 < s < 1]
    if bad:
        raise SystemExit(f"error: shares must lie strictly between 0 and 1, got {bad}")
    names = ["msp", *args.partners]
    val = g.scores(data.x_val, names)[0]
    splits = {"val": sample_images(data.x_val, data.y_val, args.n)[1:],
              "test": sample_images(data.x_test, data.y_test, args.n)[1:]}
    with tqdm(total=2 * sum(len(SWEEPS[s].values) for s in SWEPT), desc="sweeps") as bar:
        sweeps = {k: sweep_scores(g, names, x, y, bar) for k, (x, y) in splits.items()}
    sets = failure_sets(run, names, args.attacks)
    rows = [judge(("msp",), (1.0,), val, sweeps, sets, g.accept)]
    rows += [judge(("msp", p), (s, 1 - s), val, sweeps, sets, g.accept) for p in args.partners for s in args.shares]
    current = g.detectors[g.detector]
    res = {"command": "python bench/guard_tradeoff.py " + " ".join(sys.argv[1:]), "run": str(run.path),
           "guard": {"detector": g.detector, "parts": list(getattr(current, "parts", [])),
                     "shares": list(getattr(current, "shares", [])), "accept": g.accept},
           "settings": {"n": args.n, "attacks": args.attacks, "sweeps": list(SWEPT)},
           "seconds": round(time.perf_counter() - t0, 1), "rows": rows}
    write_json(args.out, res)
    other = suite_names(run.config.dataset)[0]
    plot(rows, args.partners, other, args.out.with_suffix(".png"))
    short = ["test", "mistakes", other]
    print(f"{'guard':36s} {'val x / y / rot':20s} {'test x / y / rot':20s} "
          + " ".join(f"{k[:9]:>9s}" for k in short) + "  worst attack")
    attack_keys = [k for k in sets if "fooled" in k]
    for r in rows:
        name = " + ".join(f"{p} {s:g}" for p, s in zip(r["parts"], r["shares"]))
        c = [" ".join(f"{r['correlation'][sp][sw]:.3f}" for sw in SWEPT) for sp in ("val", "test")]
        worst = max(attack_keys, key=lambda k: r["accepted"][k])
        print(f"{name:36s} {c[0]:20s} {c[1]:20s} " + " ".join(f"{100 * r['accepted'][k]:8.1f}%" for k in short)
              + f"  {100 * r['accepted'][worst]:.1f}% {worst.split()[0]}")
    print(f"wrote {args.out} and {args.out.with_suffix('.png')} ({res['seconds']} s)")


if __name__ == "__main__":
    main()
