"""Detection and calibration metrics.

Every detector scores **higher = more in-distribution**. This module is the only place that
turns that around: :func:`_as_labelled` builds (labels, scores) with in-distribution = 1, and
AUPR-out negates the score so that OOD is the positive class there.

FPR95 here always means: the fraction of OOD inputs *accepted* when the threshold accepts 95%
of in-distribution inputs.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import mannwhitneyu
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from .errors import InputError

CONFIDENCE_LEVELS = (0.99, 0.95, 0.75)


def _as_labelled(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray]:
    s_in = np.asarray(scores_in, dtype=np.float64).ravel()
    s_out = np.asarray(scores_out, dtype=np.float64).ravel()
    if len(s_in) == 0 or len(s_out) == 0:
        raise InputError("metrics need at least one in-distribution and one OOD score")
    if not (np.isfinite(s_in).all() and np.isfinite(s_out).all()):
        raise InputError("metrics got NaN or infinite scores")
    labels = np.r_[np.ones(len(s_in)), np.zeros(len(s_out))]
    return labels, np.r_[s_in, s_out]


def auroc(scores_in, scores_out) -> float:
    """P(score of a random in-distribution input > score of a random OOD input); ties count 1/2."""
    labels, scores = _as_labelled(scores_in, scores_out)
    return float(roc_auc_score(labels, scores))


def aupr_in(scores_in, scores_out) -> float:
    """Average precision with in-distribution as the positive class."""
    labels, scores = _as_labelled(scores_in, scores_out)
    return float(average_precision_score(labels, scores))


def aupr_out(scores_in, scores_out) -> float:
    """Average precision with OOD as the positive class (scores negated)."""
    labels, scores = _as_labelled(scores_in, scores_out)
    return float(average_precision_score(1 - labels, -scores))


def threshold_at(scores_in, accept: float = 0.95) -> float:
    """The score threshold that accepts the fraction `accept` of in-distribution scores (>= t)."""
    if not 0 < accept <= 1:
        raise InputError(f"acceptance rate must lie in (0, 1], got {accept}")
    s = np.sort(np.asarray(scores_in, dtype=np.float64))
    return float(s[int(np.floor((1 - accept) * len(s)))])


def fpr_at_tpr(scores_in, scores_out, tpr: float = 0.95) -> float:
    """Fraction of OOD inputs accepted when the threshold accepts `tpr` of in-distribution."""
    _as_labelled(scores_in, scores_out)
    t = threshold_at(scores_in, tpr)
    return float(np.mean(np.asarray(scores_out) >= t))


def fpr95(scores_in, scores_out) -> float:
    return fpr_at_tpr(scores_in, scores_out, 0.95)


def detection_error(scores_in, scores_out) -> float:
    """min over thresholds of 0.5 (1 - TPR) + 0.5 FPR (equal priors)."""
    labels, scores = _as_labelled(scores_in, scores_out)
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(np.min(0.5 * (1 - tpr) + 0.5 * fpr))


def roc(scores_in, scores_out) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate = OOD accepted, true positive rate = in-distribution accepted)."""
    labels, scores = _as_labelled(scores_in, scores_out)
    fpr, tpr, _ = roc_curve(labels, scores)
    return fpr, tpr


def mann_whitney_p(scores_in, scores_out) -> float:
    """One-sided Mann-Whitney U p-value for 'in-distribution scores are higher'."""
    _as_labelled(scores_in, scores_out)
    return float(mannwhitneyu(scores_in, scores_out, alternative="greater").pvalue)


def all_metrics(scores_in, scores_out) -> dict[str, float]:
    return {"auroc": auroc(scores_in, scores_out), "aupr_in": aupr_in(scores_in, scores_out),
            "aupr_out": aupr_out(scores_in, scores_out), "fpr95": fpr95(scores_in, scores_out),
            "detection_error": detection_error(scores_in, scores_out)}


def ece(probs, labels, n_bins: int = 15) -> float:
    """Expected calibration error of the max-softmax confidence, equal-width bins."""
    probs, labels = np.asarray(probs, dtype=np.float64), np.asarray(labels)
    if probs.ndim != 2 or labels.shape != (len(probs),):
        raise InputError(f"ece: probs (N, C) and labels (N,), got {probs.shape} and {labels.shape}")
    conf, correct = probs.max(1), (probs.argmax(1) == labels).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        m = bins == b
        if m.any():
            total += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(total)


def confidence_table(max_probs, levels=CONFIDENCE_LEVELS) -> dict[str, float]:
    """Share of a set whose max softmax exceeds each level, keys like '>0.99'."""
    p = np.asarray(max_probs, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0:
        raise InputError("confidence_table: expected a non-empty 1-D array of max-softmax values")
    return {f">{lv:g}": float(np.mean(p > lv)) for lv in levels}
