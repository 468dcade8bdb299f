"""Failure sources beyond OOD sets: the classifier's own test-set mistakes, and adversarial inputs.

Mistakes: positives (in-distribution) = correctly classified test images, negatives = the
misclassified ones. Attacks: the first N correctly classified test images are attacked; the
positives are those clean images, the negatives are the adversarial versions that fooled the
classifier (Lee et al. 2018). The attack's success rate is reported beside every number, so a
weak attack cannot make detection look easy.
"""
from __future__ import annotations

import logging

import numpy as np
from tqdm.auto import tqdm

from .attacks import AttackConfig, attack, predict
from .scoring import SetScores, score_set
from .metrics import all_metrics, mann_whitney_p
from .run import Run

log = logging.getLogger(__name__)

LINF_EPS = (0.05, 0.1, 0.2, 0.3)
L2_EPS = (1.0, 2.0)
ATTACK_GRID = tuple([(a, e) for a in ("fgsm", "bim", "pgd") for e in LINF_EPS] + [("pgd_l2", e) for e in L2_EPS])


def column_name(attack_name: str, eps: float) -> str:
    return f"{attack_name}@{eps:g}"


def _rows(guard, column: str, kind: str, s_in: dict, s_out: dict, extra: dict) -> list[dict]:
    rows = []
    for det in guard.detectors:
        if len(s_out[det]) == 0 or len(s_in[det]) == 0:
            continue
        m = all_metrics(s_in[det], s_out[det])
        m["mann_whitney_p"] = mann_whitney_p(s_in[det], s_out[det])
        rows.append({"detector": det, "ood": column, "kind": kind, **m, **extra})
    return rows


def mistakes_set(test: SetScores, y_test: np.ndarray) -> SetScores:
    """The misclassified test images as a failure 'set' paired with the correct ones."""
    wrong = test.logits.argmax(1) != y_test
    right = np.flatnonzero(~wrong)
    return SetScores("mistakes", "mistakes", test.images[wrong], test.logits[wrong],
                     {d: v[wrong] for d, v in test.scores.items()}, partner=right, mask=None)


def mistake_rows(run: Run, test: SetScores, y_test: np.ndarray) -> list[dict]:
    """Detecting the classifier's own errors on the test set."""
    wrong = test.logits.argmax(1) != y_test
    s_in = {d: v[~wrong] for d, v in test.scores.items()}
    s_out = {d: v[wrong] for d, v in test.scores.items()}
    return _rows(run.guard, "mistakes", "mistakes", s_in, s_out, {"n_mistakes": int(wrong.sum())})


def attack_rows(run: Run, test: SetScores, y_test: np.ndarray, n: int = 500, steps: int = 20,
                grid=ATTACK_GRID, progress: bool = False) -> tuple[list[dict], list[SetScores]]:
    """Attack the first `n` correctly classified test images with every (attack, eps) in `grid`."""
    correct = np.flatnonzero(test.logits.argmax(1) == y_test)[:n]
    x, y = test.images[correct], y_test[correct]
    clean = {d: v[correct] for d, v in test.scores.items()}
    rows, sets = [], []
    for name, eps in tqdm(grid, desc="attacks", disable=not progress, leave=False):
        cfg = AttackConfig(name=name, eps=eps, steps=steps, seed=0)
        col = column_name(name, eps)
        adv = attack(run.classifier, x, y, cfg)
        fooled = predict(run.classifier, adv) != y
        scored = score_set(run, f"adv_{col}_steps{steps}", adv, "attack")
        scored.name, scored.partner, scored.mask = col, correct, fooled
        sets.append(scored)
        s_out = {d: v[fooled] for d, v in scored.scores.items()}
        s_in = {d: v[fooled] for d, v in clean.items()}
        extra = {"success_rate": float(fooled.mean()), "n_attacked": int(len(x)), "steps": steps}
        rows += _rows(run.guard, col, "attack", s_in, s_out, extra)
        log.info("%s: success rate %.3f", col, fooled.mean())
    return rows, sets
