"""The table `abstain robustness` prints: ours beside the ABS authors' released numbers."""
from __future__ import annotations

from .evaluate import ANCHORS


def _fmt(value, anchor=None, pct: bool = False) -> str:
    text = "inf" if value is None else (f"{100 * value:.1f}%" if pct else f"{value:.3f}")
    if anchor is not None:
        text += f" ({100 * anchor:.0f}%)" if pct else f" ({anchor:g})"
    return text


def attacked_checkpoints(result: dict) -> dict:
    """{model: its checkpoint's identity} for the models whose result names one (older JSONs do not)."""
    return {name: r["checkpoint"] for name, r in result["models"].items() if "checkpoint" in r}


def checkpoint_label(c: dict) -> str:
    """'file sha256 <12 hex> weights <12 hex>' (older results name no weights digest)."""
    text = f"{c['file']} sha256 {c['sha256'][:12]}"
    return text + (f" weights {c['weights_sha256'][:12]}" if "weights_sha256" in c else "")


def format_robustness(result: dict) -> str:
    head = f"{'model':<12}{'clean':>8}{'L2 median':>18}{'Linf median':>18}{'acc L2 1.5':>16}{'acc Linf 0.3':>14}{'s':>7}"
    lines = ["(in brackets: the ABS authors' released curves)", head]
    for name, r in result["models"].items():
        a = {k: v.get(name) for k, v in ANCHORS.items()}
        lines.append(f"{name:<12}{_fmt(r['clean_accuracy'], pct=True):>8}"
                     f"{_fmt(r['l2_median'], a['l2_median']):>18}{_fmt(r['linf_median'], a['linf_median']):>18}"
                     f"{_fmt(r['acc_l2_1.5'], a['acc_l2_1.5'], True):>16}{_fmt(r['acc_linf_0.3'], pct=True):>14}"
                     f"{sum(r['seconds'].values()):>7.0f}")
    named = attacked_checkpoints(result)
    if named:
        lines.append("checkpoints attacked: " + ", ".join(f"{name} {checkpoint_label(c)}"
                                                          for name, c in named.items()))
    mode = result.get("settings", {}).get("abs_mode")
    if mode and any("abs" in name for name in result["models"]):
        lines.append(f"ABS models attacked (and evaluated) in their {mode} inference")
    return "\n".join(lines)
