"""Plain-text tables of an evaluation result, for the terminal."""
from __future__ import annotations

SEED_CONFIDENCE = {">0.99": 0.634, ">0.95": 0.743, ">0.75": 0.889}   # seed 000, FashionMNIST


def results_table(result: dict, metric: str = "auroc") -> str:
    """Rows = detectors, columns = OOD sets; the guard's detector marked with '*'."""
    rows = result["results"]
    sets = list(dict.fromkeys(r["ood"] for r in rows))
    dets = list(dict.fromkeys(r["detector"] for r in rows))
    cell = {(r["detector"], r["ood"]): r[metric] for r in rows}
    width = max(8, *(len(s) for s in sets))
    head = f"{metric.upper():<14}" + "".join(f"{s:>{width + 1}}" for s in sets)
    lines = [head, "-" * len(head)]
    for d in dets:
        mark = "*" if d == result["guard"]["detector"] else " "
        lines.append(f"{d + mark:<14}" + "".join(f"{cell[(d, s)]:>{width + 1}.4f}" for s in sets))
    return "\n".join(lines)


def confidence_lines(result: dict) -> str:
    table = result["confidence_table"]
    lines = ["share of each set with max softmax above 0.99 / 0.95 / 0.75:"]
    for name, row in table.items():
        lines.append(f"  {name:<16}" + " / ".join(f"{100 * v:5.1f}%" for v in row.values()))
    lines.append(f"  {'seed 000 (FMNIST)':<16}" + " / ".join(f"{100 * v:5.1f}%" for v in SEED_CONFIDENCE.values()))
    return "\n".join(lines)


def overview(result: dict) -> str:
    g = result["guard"]
    acc = ", ".join(f"{k} {100 * v:.1f}%" for k, v in g["accepted"].items())
    return (f"classifier test accuracy {100 * result['accuracy']:.2f}%   ECE {result['ece']:.4f}\n"
            f"guard: {g['detector']} >= {g['threshold']:.4g} (set to accept {100 * g['target_accept']:.0f}% "
            f"of validation images)\naccepted: {acc}\n\n{confidence_lines(result)}\n\n"
            f"{results_table(result, 'auroc')}\n\n{results_table(result, 'fpr95')}\n"
            "FPR95 = share of OOD inputs accepted when 95% of test digits are accepted. * = guard's detector")
