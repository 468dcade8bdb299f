"""A compact text summary of run_probes()'s result, for the terminal."""
from __future__ import annotations


def _pct(share: float) -> str:
    return f"{100 * share:5.1f}%"


def _one_vs_seven(r: dict) -> list[str]:
    if "skipped" in r:
        return [f"1-vs-7: {r['skipped']}"]
    g = r["guard"]
    kind = "two-class ABS" if r.get("classifier") == "abs" else "CNN"
    lines = [f"1-vs-7 {kind} (trained on MNIST 1s and 7s only): test accuracy {_pct(r['test_accuracy'])}; "
             f"its guard: {g['detector']}, accepts {g['accept']:.0%} of validation 1s and 7s",
             f"  {'image':<24}{'P(1)':>8}{'P(7)':>8}  {'guard':<9}seed"]
    for row in r["images"]:
        seed = r["seed"].get(row["name"])
        note = f"P({seed['class']}) {seed['probability']:.4f}" if seed else ""
        lines.append(f"  {row['name']:<24}{row['p1']:>8.4f}{row['p7']:>8.4f}  {row['verdict']:<9}{note}")
    lines.append("  all test 1s shifted by dx px: share called 7 / share the guard abstains on")
    lines.append("  " + "  ".join(f"{s['dx']:+d}: {100 * s['called_7']:.0f}/{100 * s['abstain']:.0f}%"
                                  for s in r["shifts"]))
    sevens = [b["row"] for b in r["bar_rows"] if b["p7"] > 0.5]
    kept = [b["row"] for b in r["bar_rows"] if b["verdict"] == "accept"]
    lines.append(f"  lone bar at rows {r['bar_rows'][0]['row']}-{r['bar_rows'][-1]['row']}: called 7 at rows "
                 f"{sevens or 'none'}; guard accepts at rows {kept or 'none'}")
    o = r["other_test_digits"]
    lines.append(f"  other test digits (not 1 or 7, {o['n']}): mean confidence {o['confidence']:.3f}, "
                 f"guard abstains on {_pct(o['abstain'])}")
    return lines


def _sweeps(sweeps: dict) -> list[str]:
    lines = ["sweeps on test digits; overconfidence = mean over steps of (mean max-softmax - accuracy); "
             "corr = Pearson(guard abstention, classifier error) along the sweep",
             f"  {'sweep':<13}{'steps':>6}{'acc@0':>8}{'min acc':>9}{'conf there':>11}{'abstain there':>14}"
             f"{'overconf':>10}{'corr':>7}"]
    for name, s in sweeps.items():
        ident = next(st for st in s["steps"] if st["value"] == s["identity"])
        corr = "n/a" if s["correlation"] is None else f"{s['correlation']:.2f}"
        lines.append(f"  {name:<13}{len(s['steps']):>6}{_pct(ident['accuracy']):>8}{_pct(s['min_accuracy']):>9}"
                     f"{s['confidence_at_min_accuracy']:>11.3f}{_pct(s['abstain_at_min_accuracy']):>14}"
                     f"{s['overconfidence']:>+10.3f}{corr:>7}")
    best = {name: _best_detector(s) for name, s in sweeps.items() if s.get("correlation_by")}
    if best:
        lines.append("  detector whose abstention (at the guard's validation acceptance) tracks the error best: "
                     + "; ".join(f"{name} {d} {c:.2f}" for name, (d, c) in best.items() if d is not None))
    return lines


def _best_detector(sweep: dict) -> tuple[str | None, float]:
    """(detector, correlation) with the highest error correlation along a sweep; (None, nan) if none."""
    known = {d: c for d, c in sweep["correlation_by"].items() if c is not None}
    if not known:
        return None, float("nan")
    d = max(known, key=known.get)
    return d, known[d]


def _shapes(shapes: list[dict]) -> list[str]:
    sure = sum(s["confidence"] >= 0.9 for s in shapes)
    abstained = sum(s["verdict"] == "abstain" for s in shapes)
    accepted = [f"{s['name']} -> {s['class']} ({s['confidence']:.2f})" for s in shapes if s["verdict"] == "accept"]
    return [f"shapes that are not digits ({len(shapes)}): classifier >= 0.9 sure on {sure}; "
            f"guard abstains on {abstained}",
            "  accepted by the guard: " + (", ".join(accepted) or "none")]


def format_summary(result: dict) -> str:
    """The 1-vs-7 table, one line per sweep, and the shapes in brief."""
    head = (f"probes of {result['run']} ({result['dataset']}), classifier {result.get('classifier', 'cnn')}, "
            f"guard {result['guard']['detector']}, "
            f"{result['settings']['n']} test images per sweep step")
    return "\n".join([head, ""] + _one_vs_seven(result["one_vs_seven"]) + [""] + _sweeps(result["sweeps"])
                     + [""] + _shapes(result["shapes"]))
