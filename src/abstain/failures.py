"""Failure sources beyond OOD sets: the classifier's own test-set mistakes, and adversarial inputs.

Each is a SetScores paired with test images (`partner`): mistakes pair the misclassified test
images with the correctly classified ones; attacks pair the adversarial versions that fooled the
classifier with their clean originals (Lee et al. 2018), the first N correctly classified test
images. The attack's success rate travels in `info`, so a weak attack cannot make detection look easy.
"""
from __future__ import annotations

import logging

import numpy as np
from tqdm.auto import tqdm

from .atomic import atomic_path
from .attacks import AttackConfig, attack, predict
from .run import Run
from .scoring import SetScores, score_set
from .tensors import images_digest

log = logging.getLogger(__name__)

LINF_EPS = (0.05, 0.1, 0.2, 0.3)
L2_EPS = (1.0, 2.0)
ATTACK_GRID = tuple([(a, e) for a in ("fgsm", "bim", "pgd") for e in LINF_EPS] + [("pgd_l2", e) for e in L2_EPS])


def column_name(attack_name: str, eps: float) -> str:
    return f"{attack_name}@{eps:g}"


def mistakes_set(test: SetScores, y_test: np.ndarray) -> SetScores:
    """The misclassified test images as a failure 'set' paired with the correct ones."""
    wrong = test.logits.argmax(1) != y_test
    return SetScores("mistakes", "mistakes", test.images[wrong], test.logits[wrong],
                     {d: v[wrong] for d, v in test.scores.items()}, partner=np.flatnonzero(~wrong),
                     info={"n_mistakes": int(wrong.sum())})


def cached_attack(run: Run, x: np.ndarray, y: np.ndarray, cfg: AttackConfig, tag: str) -> np.ndarray:
    """`attack`, stored under RUN/scores/ with the run's fingerprint and the images' hash, so a rerun
    does not redo it."""
    path, digest = run.path / "scores" / f"{tag}.adv.npz", images_digest(x)
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                if str(z["fingerprint"]) == run.fingerprint and str(z["images"]) == digest \
                        and np.array_equal(z["labels"], y):
                    return z["adv"]
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable attack cache %s", path)
    adv = attack(run.classifier, x, y, cfg)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, fingerprint=np.array(run.fingerprint), images=np.array(digest), labels=y, adv=adv)
    return adv


def attack_tag(name: str, eps: float, steps: int) -> str:
    """The name under which eval stores an attack's images and scores."""
    return f"adv_{column_name(name, eps)}_steps{steps}"


def eval_attack(run: Run, x: np.ndarray, y: np.ndarray, name: str, eps: float, steps: int = 20) -> np.ndarray:
    """The adversarial versions of x that `abstain eval --attacks N` makes, from its cache."""
    return cached_attack(run, x, y, AttackConfig(name=name, eps=eps, steps=steps, seed=0),
                         f"{attack_tag(name, eps, steps)}.{len(x)}")


def attack_sets(run: Run, test: SetScores, y_test: np.ndarray, n: int = 500, steps: int = 20,
                grid=ATTACK_GRID, progress: bool = False) -> list[SetScores]:
    """Attack the first `n` correctly classified test images with every (attack, eps) in `grid`."""
    correct = np.flatnonzero(test.logits.argmax(1) == y_test)[:n]
    x, y = test.images[correct], y_test[correct]
    sets = []
    for name, eps in tqdm(grid, desc="attacks", disable=not progress, leave=False):
        col = column_name(name, eps)
        tag = attack_tag(name, eps, steps)
        adv = eval_attack(run, x, y, name, eps, steps)
        fooled = predict(run.classifier, adv) != y
        scored = score_set(run, tag, adv, "attack")
        scored.name, scored.partner, scored.mask = col, correct, fooled
        scored.info = {"success_rate": float(fooled.mean()), "n_attacked": int(len(x)), "steps": steps}
        sets.append(scored)
        log.info("%s: success rate %.3f", col, fooled.mean())
    return sets
