"""One decision from several detectors: abstain when any of them would.

No single detector catches every failure source. As the guard of the MNIST demo run (95%
validation acceptance), ``msp`` lets 3.7% of the test mistakes through but 11% of FashionMNIST
and up to 98% of successful attacks; ``mahalanobis_layers`` 0.02% of FashionMNIST, no attack,
but 78% of the mistakes (README, "The guard's default detector"). ``union`` gives each part a
share of the rejections:

    u_j(x)   = rank of part j's score among its validation scores, in [0, 1]
               (linear between order statistics; below the lowest validation score it goes on
               falling with the slope of the lowest 1%, so far-away inputs still rank lower)
    score(x) = min_j u_j(x) / share_j                     (higher = more in-distribution)

A guard on this score abstains exactly when some part's rank falls below its share times one
common level, and calibrating that level to accept 95% of the validation images splits the 5%
among the parts by their shares (less the overlap). Default: ``msp`` 0.8, ``mahalanobis_layers``
0.2, i.e. about 4% and 1% of the validation images. MNIST runs take ``msp`` 0.95 and
``mahalanobis_layers_centred`` 0.05 instead (``abstain.run_config.GUARD_UNION``; README, "Probes").

Input view ``"scores"``: an (N, len(parts)) array of the parts' scores, columns in ``parts``
order; the guard builds it from the parts, which must be other detectors of the same guard.
"""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from .base import Detector, check_scores_input, register


@register("union")
class Union(Detector):
    input = "scores"
    fit_split = "val"
    description = ("abstains when any part would: the lowest of the parts' validation ranks, each "
                   "divided by its share (default msp 0.8, mahalanobis_layers 0.2)")

    def __init__(self, parts=("msp", "mahalanobis_layers"), shares=(0.8, 0.2)):
        self.parts = parts
        self.shares = shares

    def _check(self, X, what: str) -> np.ndarray:
        if len(self.parts) != len(self.shares) or len(self.parts) < 1:
            raise InputError(f"union: {len(self.parts)} parts but {len(self.shares)} shares")
        if min(self.shares) <= 0:
            raise InputError(f"union: shares must be positive, got {list(self.shares)}")
        X = check_scores_input(X, 2, f"union {what}").astype(np.float64)
        if X.shape[1] != len(self.parts):
            raise InputError(f"union {what}: expected {len(self.parts)} score columns "
                             f"({', '.join(self.parts)}), got {X.shape[1]}")
        return X

    def fit(self, X, y=None) -> "Union":
        X = self._check(X, "fit")
        if len(X) < 2:
            raise InputError("union fit: needs at least 2 validation images")
        self.sorted_ = np.sort(X, axis=0)                 # (n, parts) validation scores
        return self

    def ranks(self, X) -> np.ndarray:
        """(N, parts): each part's validation rank u_j(x) (see the module doc)."""
        self.check_fitted()
        X = self._check(X, "scores")
        n = len(self.sorted_)
        levels = (np.arange(n) + 0.5) / n
        low = max(2, n // 100)                            # the lowest 1% sets the slope below
        out = np.empty_like(X)
        for j in range(X.shape[1]):
            s = self.sorted_[:, j]
            out[:, j] = np.interp(X[:, j], s, levels)
            span = s[low - 1] - s[0]
            slope = (levels[low - 1] - levels[0]) / span if span > 0 else 1.0
            below = X[:, j] < s[0]
            out[below, j] = levels[0] - (s[0] - X[below, j]) * slope
        return out

    def score_samples(self, X) -> np.ndarray:
        return (self.ranks(X) / np.asarray(self.shares, np.float64)).min(1)

    def flagged(self, X, level: float) -> np.ndarray:
        """(N, parts) bool: which parts put an input below `level` (the guard's threshold on
        this score), i.e. the parts a guard on it abstains for."""
        return self.ranks(X) / np.asarray(self.shares, np.float64) < level
