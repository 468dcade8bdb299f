"""README's tables from an evaluation JSON (what `make demo` writes to RUN/eval.json).

Usage: python bench/readme_tables.py [EVAL_JSON] (default bench/results/demo_eval.json)
Prints, as Markdown: the confidence table, every detector against every failure source
(AUROC / FPR95, bold = best in the row) and the guard's acceptance per set. Nothing is computed
here that the JSON does not hold; the tables in README.md are pasted from this output.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pct(v: float) -> str:
    s = f"{100 * v:.1f}%"
    return f"{100 * v:.2f}%" if s in ("0.0%", "0.1%") and v > 0 else s


def confidence_table(result: dict) -> str:
    rows = ["| set | >0.99 | >0.95 | >0.75 |", "|---|---|---|---|"]
    rows += [f"| {name} | " + " | ".join(_pct(v) for v in row.values()) + " |"
             for name, row in result["confidence_table"].items()]
    return "\n".join(rows)


def detector_table(result: dict) -> str:
    rows = result["results"]
    sets = list(dict.fromkeys(r["ood"] for r in rows))
    dets = list(dict.fromkeys(r["detector"] for r in rows))
    cell = {(r["detector"], r["ood"]): r for r in rows}
    rates = result.get("attacks", {}).get("success_rate", {})
    guard = result["guard"]["detector"]
    head = "| set | " + " | ".join(d + (" (guard)" if d == guard else "") for d in dets) + " |"
    out = [head, "|---" * (len(dets) + 1) + "|"]
    for s in sets:
        best = max(cell[(d, s)]["auroc"] for d in dets)
        cells = []
        for d in dets:
            r = cell[(d, s)]
            text = f"{r['auroc']:.4f} / {_pct(r['fpr95'])}"
            cells.append(f"**{text}**" if round(r["auroc"], 4) == round(best, 4) else text)
        name = f"{s} ({100 * rates[s]:.0f}% fooled)" if s in rates else s
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "bench" / "results" / "demo_eval.json"
    result = json.loads(path.read_text())
    g = result["guard"]
    print(f"accuracy {100 * result['accuracy']:.2f}%, ECE {result['ece']:.4f}, T = {result['temperature']:.2f}\n")
    print(confidence_table(result), "\n")
    print(detector_table(result), "\n")
    print(f"guard {g['detector']} accepts: " + ", ".join(f"{k} {_pct(v)}" for k, v in g["accepted"].items()))
    print("of the failures: " + ", ".join(f"{k} {_pct(v)}" for k, v in g.get("accepted_failures", {}).items()))


if __name__ == "__main__":
    main()
