"""Lee et al. 2018 in full: Mahalanobis scores on several layers, with input pre-processing.

Per layer l, class means and one shared covariance are fitted on the training features; the
layer score is max_c -(f_l - mu_lc)^T S_l^-1 (f_l - mu_lc). Lee et al. weight the layers with a
logistic regression fitted on OOD validation data; to use in-distribution data only, we instead
standardise each layer's score with its mean and spread on the training images and add them.
Input pre-processing: x' = clip(x + eps * sign(grad_x score(x)), 0, 1), then score x'.

``recentre=True`` first moves every image (fitting and scoring) by whole pixels so that its centre
of mass sits where the training images' does on average: the centring MNIST's makers applied
(LeCun et al.: "centered in a 28x28 image by computing the center of mass of the pixels"). The
score then ignores where in the frame a digit was drawn, and judges only what was drawn.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..models.classifier import CNN
from ..tensors import as_images, mass_centres, recentre, to_tensor
from ..views import Layers
from .base import Detector, register


@register("mahalanobis_layers")
class MahalanobisLayers(Detector):
    """Reads the "layers" view (:class:`abstain.views.Layers`: the guard's one forward pass) or
    plain images (N, 28, 28), which it passes through the classifier itself."""

    input = "layers"
    model_params = ("classifier",)
    description = "sum of standardised per-layer Mahalanobis scores, optional input pre-processing (Lee et al. 2018)"

    def __init__(self, classifier: CNN | None = None, eps: float = 0.0, reg_covar: float = 1e-6,
                 batch_size: int = 500, recentre: bool = False):
        self.classifier = classifier
        self.eps = eps
        self.recentre = recentre
        self.reg_covar = reg_covar
        self.batch_size = batch_size

    def _view(self, X, what: str) -> Layers:
        """X as the layers view of the images this detector judges: recentred when it
        recentres (a forward pass only for the images that recentring moves)."""
        if isinstance(X, Layers):
            images, acts = as_images(X.images, what), list(X.acts)
        else:
            images, acts = as_images(X, what), None
        placed = self._placed(images)
        if acts is None:
            rows = np.arange(len(images))
        elif self.recentre:
            rows = np.flatnonzero((placed != images).reshape(len(images), -1).any(1))
        else:
            rows = np.arange(0)
        if len(rows) == len(images):
            acts = self._layers(placed)
        elif len(rows):
            acts = [a.copy() for a in acts]
            for a, f in zip(acts, self._layers(placed[rows])):
                a[rows] = f
        return Layers(placed, [np.asarray(a, np.float64) for a in acts])

    def _layers(self, X) -> list[np.ndarray]:
        self.classifier.eval()
        with torch.no_grad():
            parts = [self.classifier.forward_layers(to_tensor(X[i:i + self.batch_size]))
                     for i in range(0, len(X), self.batch_size)]
        return [torch.cat([p[k] for p in parts]).numpy() for k in range(len(parts[0]))]

    def fit(self, X, y=None):
        if self.classifier is None:
            raise InputError("mahalanobis_layers: needs the run's trained classifier")
        if y is None:
            raise InputError("mahalanobis_layers: fit needs class labels")
        y = np.asarray(y)
        if self.recentre:
            images = X.images if isinstance(X, Layers) else X
            self.mass_centre_ = mass_centres(as_images(images, "mahalanobis_layers fit")).mean(0)
        view = self._view(X, "mahalanobis_layers fit")
        classes = np.unique(y)
        for k, F in enumerate(view.acts):
            means = np.stack([F[y == c].mean(0) for c in classes])
            centred = F - means[np.searchsorted(classes, y)]
            cov = centred.T @ centred / len(F) + self.reg_covar * np.eye(F.shape[1])
            setattr(self, f"means{k}_", means)
            setattr(self, f"precision{k}_", np.linalg.inv(cov))
        self.n_layers_ = k + 1
        self.center_ = np.zeros(self.n_layers_)
        self.scale_ = np.ones(self.n_layers_)
        raw = self._standardised([torch.from_numpy(a[:5000]) for a in view.acts]).numpy()
        self.center_, self.scale_ = raw.mean(0), raw.std(0) + 1e-12
        return self

    def _placed(self, X):
        return recentre(X, self.mass_centre_) if self.recentre else X

    def _raw(self, x: torch.Tensor) -> torch.Tensor:
        """Per-layer standardised scores (N, L) of images x, differentiable in x."""
        return self._standardised(self.classifier.forward_layers(x))

    def _standardised(self, acts: list[torch.Tensor]) -> torch.Tensor:
        cols = []
        for k, f in enumerate(acts):
            f = f.double()
            mu = torch.from_numpy(getattr(self, f"means{k}_"))
            prec = torch.from_numpy(getattr(self, f"precision{k}_"))
            quad = ((f @ prec) * f).sum(1, keepdim=True) - 2 * f @ prec @ mu.T + ((mu @ prec) * mu).sum(1)
            cols.append(-quad.min(1).values)
        raw = torch.stack(cols, 1)
        return (raw - torch.from_numpy(np.asarray(self.center_))) / torch.from_numpy(np.asarray(self.scale_))

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        if self.eps <= 0:
            view = self._view(X, "mahalanobis_layers scores")
            return np.concatenate([self._standardised([torch.from_numpy(a[i:i + self.batch_size])
                                                       for a in view.acts]).sum(1).numpy()
                                   for i in range(0, len(view), self.batch_size)])
        X = self._placed(as_images(X.images if isinstance(X, Layers) else X, "mahalanobis_layers scores"))
        out = []
        for i in range(0, len(X), self.batch_size):
            x = to_tensor(X[i:i + self.batch_size]).requires_grad_(True)
            (grad,) = torch.autograd.grad(self._raw(x).sum(), x)
            x = (x + self.eps * grad.sign()).clamp(0, 1)
            with torch.no_grad():
                out.append(self._raw(x).sum(1).numpy())
        return np.concatenate(out)
