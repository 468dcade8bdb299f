"""Which classifier a probe judges: the run's CNN (`cnn`) or its analysis-by-synthesis model (`abs`).

A probe classifier maps uint8 images (N, 28, 28) to class probabilities (N, C): for `cnn` the
softmax of the guard's classifier, for `abs` ABS's calibrated confidences (p_c ∝ exp(-440 l_c)
+ offset, fast inference). The guard's verdict beside it is the run's guard either way: one
accept / abstain decision per input, whichever classifier answers.
"""
from __future__ import annotations

import numpy as np
from scipy.special import softmax

from ..errors import InputError

CLASSIFIERS = ("cnn", "abs")


def abs_probs(model):
    """images -> ABS's confidences (fast inference)."""
    from ..detectors.abs import abs_predict
    return lambda images: abs_predict(model, images, "fast")[1]


def probe_classifier(run, name: str):
    """None for the CNN (callers use the guard's logits, already computed), else images -> probs."""
    if name not in CLASSIFIERS:
        raise InputError(f"unknown classifier {name!r}; known: {', '.join(CLASSIFIERS)}")
    if name == "cnn":
        return None
    return abs_probs(run.require_abs("use --classifier cnn, or refit the run"))


def probabilities(predict, images: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The judged classifier's probabilities: `predict(images)`, or the softmax of the CNN's logits."""
    return softmax(logits.astype(np.float64), axis=1) if predict is None else predict(images)
