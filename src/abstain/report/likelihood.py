"""Standalone HTML page for `abstain likelihood`: the likelihood trap and its fixes."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..atomic import write_text
from ..likelihood import bits_per_dim
from . import html, plots

FIXES = ("llr", "complexity", "complexity_png", "typicality", "dose")
RAW = ("vae_elbo", "vae_iwae")


def bits_histogram(b_in: np.ndarray, b_out: np.ndarray, unit: str) -> bytes:
    """Histogram of -log p(x) per pixel: FashionMNIST test vs MNIST test under the FashionMNIST VAE."""
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    bins = plots._bins(b_in, b_out)
    for values, label, colour in ((b_in, "FashionMNIST test (in)", plots.IN_COLOUR),
                                  (b_out, "MNIST test (OOD)", plots.OOD_COLOUR)):
        ax.hist(np.clip(values, bins[0], bins[-1]), bins=bins, density=True, alpha=0.55, color=colour,
                label=f"{label}: mean {values.mean():.3f}")
    ax.set_xlabel(f"-log p(x) under the FashionMNIST VAE ({unit}; lower = more likely)")
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return plots._png(fig)


def _table(result: dict) -> str:
    cols = result["columns"]
    head = "".join(f"<th>{html.esc(c)}<br>AUROC / FPR95</th>" for c in cols)
    order = [d for d in (*RAW, *FIXES) if d in result["table"]]
    order += [d for d in result["table"] if d not in order]
    best = {c: max((r.get(c, {}).get("auroc", -1), d) for d, r in result["table"].items())[1] for c in cols}
    body = []
    for det in order:
        cells = []
        for c in cols:
            m = result["table"][det].get(c)
            txt = "n/a" if m is None else f"{html.fmt_num(m['auroc'])} / {html.fmt_pct(m['fpr95'])}"
            cls = ' class="best"' if best[c] == det else ""
            cells.append(f"<td{cls}>{txt}</td>")
        kind = "raw p(x)" if det in RAW else "fix" if det in FIXES else "comparison"
        body.append(f'<tr><td class="name">{html.esc(det)} <span class="small">({kind})</span></td>'
                    + "".join(cells) + "</tr>")
    return (f'<table><tr><th class="name">detector</th>{head}</tr>{"".join(body)}</table>'
            '<p class="note">FPR95 = share of OOD images accepted when 95% of in-distribution test '
            "images are accepted. Best AUROC per column in green.</p>")


def render(result: dict, sets: dict) -> str:
    parts = []
    bits = result.get("bits_per_dim", {})
    if bits:
        unit = "bits/dim" if result["vae_likelihood"] == "logistic" else "Bernoulli nats/dim in bits"
        png = bits_histogram(bits_per_dim(sets["test"].scores["vae_iwae"]),
                             bits_per_dim(sets["mnist"].scores["vae_iwae"]), unit)
        cap = (f"FashionMNIST test: {bits['fashion_mnist_test']:.3f}, MNIST test: {bits['mnist_test']:.3f} "
               f"({bits['bound']} bound; {bits['meaning']}). Nalisnick et al. (Glow): 2.958 vs 1.833.")
        parts.append(html.section("trap", "The trap: MNIST looks more likely than FashionMNIST",
                                  html.figure(png, "bits per dim histogram", cap)))
    parts.append(html.section("table", "Detectors: FashionMNIST run (and MNIST run)", _table(result)))
    typ = result.get("typicality_batches", {}).get("auroc", {})
    if typ:
        rows = "".join(f"<tr><td>{m}</td><td>{html.fmt_num(a)}</td></tr>" for m, a in typ.items())
        parts.append(html.section("typicality", "Typicality test on batches (FashionMNIST -> MNIST)",
                                  f"<table><tr><th>batch size</th><th>AUROC</th></tr>{rows}</table>"))
    note = (f'<p class="note">FashionMNIST run {html.esc(result["fashion_run"])}, classifier accuracy '
            f'{html.fmt_pct(result["classifier_accuracy"], 2)}, VAE likelihood {html.esc(result["vae_likelihood"])}. '
            "No MNIST image was used to fit or select any FashionMNIST detector.</p>")
    return html.page("abstain: likelihood that knows what it doesn't know", note + "\n".join(parts))


def write_likelihood_report(result: dict, sets: dict, out: str | Path) -> Path:
    out = Path(out)
    write_text(out, render(result, sets))
    return out
