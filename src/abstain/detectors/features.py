"""Feature-space detectors on the classifier's penultimate features (seed 002 and its baselines).

``gmm``: a class-agnostic Gaussian mixture fitted by EM in torch (float64), score = log p(f).
``mahalanobis``: Lee et al. 2018, class means and one shared covariance; score = max over
classes of minus the squared Mahalanobis distance. ``knn``: Sun et al. 2022, L2-normalised
features; score = minus the distance to the k-th nearest training feature.
"""
from __future__ import annotations

import math

import numpy as np
import torch

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


def _kmeans_pp(X: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: centres drawn with probability proportional to squared distance."""
    centres = [X[torch.randint(len(X), (1,), generator=gen)].squeeze(0)]
    d2 = ((X - centres[0]) ** 2).sum(1)
    for _ in range(1, k):
        idx = torch.multinomial(d2 / d2.sum(), 1, generator=gen)
        centres.append(X[idx].squeeze(0))
        d2 = torch.minimum(d2, ((X - centres[-1]) ** 2).sum(1))
    return torch.stack(centres)


def _kmeans(X: torch.Tensor, k: int, gen: torch.Generator, iters: int = 20,
            restarts: int = 3) -> torch.Tensor:
    """Lloyd's k-means from k-means++ seeds, best of `restarts` by inertia; one-hot (N, K)."""
    best, best_inertia = None, math.inf
    for _ in range(restarts):
        means = _kmeans_pp(X, k, gen)
        for _ in range(iters):
            resp = torch.nn.functional.one_hot(torch.cdist(X, means).argmin(1), k).double()
            counts = resp.sum(0)
            means = torch.where(counts[:, None] > 0, (resp.T @ X) / counts.clamp_min(1)[:, None], means)
        dist = torch.cdist(X, means).min(1)
        inertia = (dist.values ** 2).sum().item()
        if inertia < best_inertia:
            best, best_inertia = dist.indices, inertia
    return torch.nn.functional.one_hot(best, k).double()


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


def _m_step(X, resp, kind: str, reg: float):
    nk = resp.sum(0) + 1e-12                               # (K,)
    means = (resp.T @ X) / nk[:, None]
    if kind == "diag":
        cov = (resp.T @ X ** 2) / nk[:, None] - means ** 2 + reg
        return nk / len(X), means, cov.clamp_min(reg)
    if kind == "tied":
        cov = (X.T @ X - (nk[:, None] * means).T @ means) / len(X)
        return nk / len(X), means, cov + reg * torch.eye(X.shape[1], dtype=X.dtype)
    covs = []
    for k in range(len(means)):
        diff = X - means[k]
        covs.append((resp[:, k, None] * diff).T @ diff / nk[k] + reg * torch.eye(X.shape[1], dtype=X.dtype))
    return nk / len(X), means, torch.stack(covs)


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
        X = _t(self._check(X, "fit"))
        if self.covariance_type not in COVARIANCE_TYPES:
            raise InputError(f"gmm: covariance_type must be one of {COVARIANCE_TYPES}")
        if not 1 <= self.n_components <= len(X):
            raise InputError(f"gmm: n_components must lie in 1..{len(X)}, got {self.n_components}")
        self.n_features_in_ = X.shape[1]
        gen = torch.Generator().manual_seed(self.seed)
        resp = _kmeans(X, self.n_components, gen)
        weights, means, cov = _m_step(X, resp, self.covariance_type, self.reg_covar)
        prev = -math.inf
        for it in range(self.max_iter):
            joint = _log_gauss(X, means, cov, self.covariance_type) + torch.log(weights)
            ll = torch.logsumexp(joint, 1)
            resp = torch.exp(joint - ll[:, None])
            weights, means, cov = _m_step(X, resp, self.covariance_type, self.reg_covar)
            if abs(ll.mean().item() - prev) < self.tol:
                break
            prev = ll.mean().item()
        self.weights_, self.means_, self.covariances_ = weights.numpy(), means.numpy(), cov.numpy()
        self.n_iter_ = it + 1
        return self

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        X = _t(self._check(X, "scores"))
        out = []
        for i in range(0, len(X), 8192):
            joint = _log_gauss(X[i:i + 8192], _t(self.means_), _t(self.covariances_), self.covariance_type)
            out.append(torch.logsumexp(joint + torch.log(_t(self.weights_)), 1))
        return torch.cat(out).numpy()


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
        out = []
        for i in range(0, len(Q), 1024):
            d2 = (2 - 2 * Q[i:i + 1024] @ bank.T).clamp_min(0)           # unit vectors
            kth = torch.topk(d2, self.k, dim=1, largest=False).values[:, -1]
            out.append(-kth.sqrt())
        return torch.cat(out).double().numpy()
