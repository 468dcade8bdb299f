"""Detectors on the classifier's logits: MSP, max logit, energy, temperature-scaled MSP.

MSP: Hendrycks & Gimpel 2017. Max logit: Hendrycks et al. 2022. Energy: Liu et al. 2020
(score = T * logsumexp(logits / T), i.e. minus the free energy). Temperature scaling:
Guo et al. 2017 (T fitted by minimising validation NLL).
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.special import log_softmax, logsumexp, softmax

from ..errors import InputError
from .base import Detector, check_scores_input, register


class _LogitDetector(Detector):
    input = "logits"

    def fit(self, X, y=None):
        X = check_scores_input(X, 2, f"{self.name} fit")
        self.n_classes_ = int(X.shape[1])
        return self

    def _checked(self, X) -> np.ndarray:
        self.check_fitted()
        X = check_scores_input(X, 2, f"{self.name} scores").astype(np.float64)
        if X.shape[1] != self.n_classes_:
            raise InputError(f"{self.name}: fitted on {self.n_classes_} classes, got {X.shape[1]}")
        return X


@register("msp")
class MaxSoftmax(_LogitDetector):
    description = "maximum softmax probability (Hendrycks & Gimpel 2017)"

    def score_samples(self, X):
        return softmax(self._checked(X), axis=1).max(1)


@register("max_logit")
class MaxLogit(_LogitDetector):
    description = "largest logit (Hendrycks et al. 2022)"

    def score_samples(self, X):
        return self._checked(X).max(1)


@register("energy")
class Energy(_LogitDetector):
    description = "minus the free energy, T logsumexp(logits / T) (Liu et al. 2020)"

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def score_samples(self, X):
        return self.temperature * logsumexp(self._checked(X) / self.temperature, axis=1)


def fit_temperature(logits: np.ndarray, y: np.ndarray, max_iter: int = 200) -> float:
    """T > 0 minimising the mean NLL of softmax(logits / T) on held-out labelled data."""
    lg = torch.as_tensor(logits, dtype=torch.float64)
    yt = torch.as_tensor(y, dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(lg / log_t.exp(), yt)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


@register("temperature")
class TemperatureScaled(_LogitDetector):
    description = "MSP after temperature scaling fitted on validation NLL (Guo et al. 2017)"
    fit_split = "val"

    def fit(self, X, y=None):
        super().fit(X)
        if y is None:
            raise InputError("temperature: fit needs labels (validation logits and their classes)")
        y = np.asarray(y)
        if y.shape != (len(X),):
            raise InputError(f"temperature: {len(X)} logits but labels of shape {y.shape}")
        self.temperature_ = fit_temperature(np.asarray(X), y)
        return self

    def score_samples(self, X):
        return softmax(self._checked(X) / self.temperature_, axis=1).max(1)

    def nll(self, X, y) -> float:
        lp = log_softmax(self._checked(X) / self.temperature_, axis=1)
        return float(-lp[np.arange(len(y)), y].mean())
