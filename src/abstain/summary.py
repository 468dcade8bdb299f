"""Plain-text tables of an evaluation result, for the terminal."""
from __future__ import annotations

SEED_CONFIDENCE = {">0.99": 0.634, ">0.95": 0.743, ">0.75": 0.889}   # seed 000, FashionMNIST


def results_table(result: dict, metric: str = "auroc") -> str:
    """Rows = OOD sets, columns = detectors; the guard's detector marked with '*'."""
    rows = result["results"]
    sets = list(dict.fromkeys(r["ood"] for r in rows))
    dets = list(dict.fromkeys(r["detector"] for r in rows))
    cell = {(r["detector"], r["ood"]): r[metric] for r in rows}
    names = [d + ("*" if d == result["guard"]["detector"] else "") for d in dets]
    width = max(7, *(len(n) for n in names)) + 1
    first = max(len(metric) + 1, *(len(s) for s in sets)) + 1
    head = f"{metric.upper():<{first}}" + "".join(f"{n:>{width}}" for n in names)
    lines = [head, "-" * len(head)]
    for s in sets:
        lines.append(f"{s:<{first}}" + "".join(f"{cell[(d, s)]:>{width}.4f}" for d in dets))
    return "\n".join(lines)


def confidence_lines(result: dict) -> str:
    table = result["confidence_table"]
    lines = ["share of each set with max softmax above 0.99 / 0.95 / 0.75:"]
    for name, row in table.items():
        lines.append(f"  {name:<19}" + " / ".join(f"{100 * v:5.1f}%" for v in row.values()))
    lines.append(f"  {'seed 000 (FMNIST)':<19}" + " / ".join(f"{100 * v:5.1f}%" for v in SEED_CONFIDENCE.values()))
    return "\n".join(lines)


def attack_lines(result: dict) -> str:
    if "attacks" not in result:
        return ""
    a = result["attacks"]
    rates = ", ".join(f"{k} {100 * v:.0f}%" for k, v in a["success_rate"].items())
    return (f"\nattacks on {a['n_attacked']} correctly classified test images "
            f"({a['steps']} steps for the iterative ones); success rates: {rates}\n")


def guard_label(guard: dict) -> str:
    """The guard's name as printed: with its parts and shares for a combination, e.g.
    'union (msp 0.95, mahalanobis_layers_centred 0.05)'; else the detector's name."""
    parts = guard.get("parts")
    if not parts:
        return guard["detector"]
    return f"{guard['detector']} ({', '.join(f'{p} {share:g}' for p, share in parts.items())})"


def overview(result: dict) -> str:
    g = result["guard"]
    acc = ", ".join(f"{k} {100 * v:.1f}%" for k, v in {**g["accepted"], **g.get("accepted_failures", {})}.items())
    return (f"classifier test accuracy {100 * result['accuracy']:.2f}%   ECE {result['ece']:.4f}\n"
            f"guard: {guard_label(g)} >= {g['threshold']:.4g} (set to accept {100 * g['target_accept']:.0f}% "
            f"of validation images)\naccepted: {acc}\n\n{confidence_lines(result)}\n\n"
            f"{results_table(result, 'auroc')}\n\n{results_table(result, 'fpr95')}\n"
            "FPR95 = share of OOD inputs accepted when 95% of test digits are accepted. * = guard's detector\n"
            "mistakes: positives = correctly classified test images, negatives = misclassified ones"
            + attack_lines(result))


def likelihood_overview(result: dict) -> str:
    """The `abstain likelihood` table: rows = detectors, columns = AUROC / FPR95 per pair."""
    cols = result["columns"]
    short = [c.replace("fashion_mnist", "FM").replace("mnist", "M").replace("_noise", "") for c in cols]
    width = max(15, *(len(s) + 2 for s in short))
    lines = []
    bits = result.get("bits_per_dim")
    if bits:
        lines.append(f"-log p(x) per pixel under the FashionMNIST VAE ({bits['bound']}): FashionMNIST test "
                     f"{bits['fashion_mnist_test']:.3f}, MNIST test {bits['mnist_test']:.3f} ({bits['meaning']})")
    head = f"{'AUROC / FPR95':<20}" + "".join(f"{s:>{width}}" for s in short)
    lines += [f"classifier test accuracy {100 * result['classifier_accuracy']:.2f}%", head, "-" * len(head)]
    for det, row in result["table"].items():
        cells = [f"{row[c]['auroc']:.4f} / {100 * row[c]['fpr95']:4.1f}%" if c in row else "n/a" for c in cols]
        lines.append(f"{det:<20}" + "".join(f"{c:>{width}}" for c in cells))
    typ = result.get("typicality_batches", {}).get("auroc")
    if typ:
        lines.append("typicality on batches, FM->M AUROC: " + ", ".join(f"M={m}: {a:.4f}" for m, a in typ.items()))
    lines.append("FM = FashionMNIST run, M = MNIST; FPR95 = share of OOD accepted at 95% in-distribution acceptance")
    return "\n".join(lines)
