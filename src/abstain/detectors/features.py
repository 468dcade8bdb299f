"""Feature-space detectors on the classifier's penultimate features (seed 002 and its baselines).

``gmm``: a class-agnostic Gaussian mixture (EM by scikit-learn), score = log p(f) computed in
torch (float64) so that purification can follow its gradient.
``mahalanobis``: Lee et al. 2018, class means and one shared covariance; score = max over
classes of minus the squared Mahalanobis distance. ``knn``: Sun et al. 2022, L2-normalised
features; score = minus the distance to the k-th nearest training feature.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from sklearn.mixture import GaussianMixture

from ..errors import InputError
from .base import Detector, check_scores_input, register

COVARIANCE_TYPES = ("diag", "tied", "full")


def _t(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


class _FeatureDetector(Detector):
    input = "features"

    def _check(self, F, what: str) -> np.ndarray:
        F = check_scores_input(F, 2, f"{self.name} {what}")
        if what == "scores" and F.shape[1] != self.n_features_in_:
            raise InputError(f"{self.name}: fitted on {self.n_features_in_}-D features, got {F.shape[1]}-D")
        return F


def _log_gauss(X: torch.Tensor, means: torch.Tensor, cov: torch.Tensor, kind: str) -> torch.Tensor:
    """log N(x | mean_k, cov_k) for all rows and components -> (N, K)."""
    d = X.shape[1]
    if kind == "diag":                                     # cov (K, D)
        prec = 1.0 / cov
        quad = (X ** 2) @ prec.T - 2 * X @ (means * prec).T + (means ** 2 * prec).sum(1)
        logdet = torch.log(cov).sum(1)
    else:                                                  # tied (D, D) or full (K, D, D)
        chol = torch.linalg.cholesky(cov if kind == "full" else cov.unsqueeze(0))
        diff = X.unsqueeze(0) - means.unsqueeze(1)         # (K, N, D)
        sol = torch.linalg.solve_triangular(chol.expand(len(means), d, d), diff.transpose(1, 2), upper=False)
        quad = (sol ** 2).sum(1).T
        logdet = 2 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1).expand(len(means))
    return -0.5 * (quad + logdet + d * math.log(2 * math.pi))


@register("gmm")
class GMM(_FeatureDetector):
    description = "class-agnostic Gaussian mixture on penultimate features, log p(f) (seed 002)"

    def __init__(self, n_components: int = 100, covariance_type: str = "diag", max_iter: int = 100,
                 tol: float = 1e-3, reg_covar: float = 1e-6, seed: int = 0):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.seed = seed

    def fit(self, X, y=None):
        """EM by scikit-learn's GaussianMixture (k-means init): measured faster than our torch EM
        on 50,000 x 128 features (bench/gmm_speed.py); scoring and gradients use `log_density`."""
        X = self._check(X, "fit").astype(np.float64)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise InputError(f"gmm: covariance_type must be one of {COVARIANCE_TYPES}")
        if not 1 <= self.n_components <= len(X):
            raise InputError(f"gmm: n_components must lie in 1..{len(X)}, got {self.n_components}")
        gm = GaussianMixture(self.n_components, covariance_type=self.covariance_type, tol=self.tol,
                             reg_covar=self.reg_covar, max_iter=self.max_iter, random_state=self.seed).fit(X)
        self.n_features_in_ = X.shape[1]
        self.weights_, self.means_, self.covariances_ = gm.weights_, gm.means_, gm.covariances_
        self.n_iter_ = int(gm.n_iter_)
        return self

    def log_density(self, F: torch.Tensor) -> torch.Tensor:
        """Differentiable log p(f) for a float64 tensor (N, D) -> (N,)."""
        joint = _log_gauss(F, _t(self.means_), _t(self.covariances_), self.covariance_type)
        return torch.logsumexp(joint + torch.log(_t(self.weights_)), 1)

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        X = _t(self._check(X, "scores"))
        return torch.cat([self.log_density(X[i:i + 8192]) for i in range(0, len(X), 8192)]).numpy()


@register("mahalanobis")
class Mahalanobis(_FeatureDetector):
    description = "max over classes of minus the Mahalanobis distance, shared covariance (Lee et al. 2018)"

    def __init__(self, reg_covar: float = 1e-6):
        self.reg_covar = reg_covar

    def fit(self, X, y=None):
        X = self._check(X, "fit").astype(np.float64)
        if y is None:
            raise InputError("mahalanobis: fit needs class labels")
        y = np.asarray(y)
        classes = np.unique(y)
        self.n_features_in_ = X.shape[1]
        self.class_means_ = np.stack([X[y == c].mean(0) for c in classes])
        centred = X - self.class_means_[np.searchsorted(classes, y)]
        cov = centred.T @ centred / len(X) + self.reg_covar * np.eye(X.shape[1])
        self.precision_ = np.linalg.inv(cov)
        return self

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        X = _t(self._check(X, "scores"))
        mu, prec = _t(self.class_means_), _t(self.precision_)
        quad = ((X @ prec) * X).sum(1, keepdim=True) - 2 * X @ prec @ mu.T + ((mu @ prec) * mu).sum(1)
        return (-quad.min(1).values).numpy()


@register("knn")
class KNN(_FeatureDetector):
    description = "minus the distance to the k-th nearest normalised training feature (Sun et al. 2022)"

    def __init__(self, k: int = 50):
        self.k = k

    @staticmethod
    def _normalise(X: torch.Tensor) -> torch.Tensor:
        return X / X.norm(dim=1, keepdim=True).clamp_min(1e-12)

    def fit(self, X, y=None):
        X = self._check(X, "fit")
        if not 1 <= self.k <= len(X):
            raise InputError(f"knn: k must lie in 1..{len(X)}, got {self.k}")
        self.n_features_in_ = X.shape[1]
        self.bank_ = self._normalise(torch.as_tensor(X, dtype=torch.float32)).numpy()
        return self

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        Q = self._normalise(torch.as_tensor(self._check(X, "scores"), dtype=torch.float32))
        bank = torch.from_numpy(self.bank_)
        out, chunk = [], 256
        for i in range(0, len(Q), chunk):
            # unit vectors: squared distance 2 - 2 cos, a decreasing function of the cosine, so
            # the k-th nearest is the k-th largest cosine (no distance matrix to build)
            cos = torch.topk(Q[i:i + chunk] @ bank.T, self.k, dim=1).values[:, -1]
            out.append(-(2 - 2 * cos).clamp_min(0).sqrt())
        return torch.cat(out).double().numpy()
