"""p(x) gates from a VAE trained on the in-distribution images (the chicken-audit seed).

``vae_elbo``: the evidence lower bound per image; ``vae_iwae``: the importance-weighted
bound with k samples (Burda et al. 2016), tighter as k grows. Both in nats; higher = more likely.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError, NotFittedError
from ..models.vae import ConvVAE, VAEConfig
from ..tensors import as_images, to_tensor
from ..train import TrainConfig, train_vae
from .base import Detector, register


class _VAEDetector(Detector):
    input = "images"
    model_params = ("vae",)

    def __init__(self, vae: ConvVAE | None = None, k: int = 1, batch_size: int = 500, seed: int = 0):
        self.vae = vae
        self.k = k
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X, y=None):
        """Use the given trained `vae`, or train one on X when none was given."""
        X = as_images(X, f"{self.name} fit")
        if self.vae is None:
            vae = ConvVAE(VAEConfig())
            train_vae(vae, X, X[-max(len(X) // 10, 1):], TrainConfig(seed=self.seed))
            self.vae_ = vae
        else:
            self.vae_ = self.vae
        self.vae_.eval()
        self.n_train_ = len(X)
        return self

    def _restore(self) -> None:
        if self.vae is None:
            raise NotFittedError(f"{self.name}: loaded without its VAE")
        self.vae_ = self.vae.eval()

    @torch.no_grad()
    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        X = as_images(X, f"{self.name} scores")
        # one fixed set of k standard-normal draws, shared by every image: an image's score
        # depends only on the image, never on its batch or position
        gen = torch.Generator().manual_seed(self.seed)
        eps = torch.randn((self.k, self.vae_.config.latent), generator=gen)
        out = [self._bound(to_tensor(X[i:i + self.batch_size]), eps).double().numpy()
               for i in range(0, len(X), self.batch_size)]
        return np.concatenate(out)

    def _bound(self, x: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@register("vae_elbo")
class VAEElbo(_VAEDetector):
    description = "ELBO of a VAE trained on the in-distribution images, averaged over k samples"

    def _bound(self, x, eps):
        return torch.stack([self.vae_.elbo(x, e) for e in eps]).mean(0)


@register("vae_iwae")
class VAEIwae(_VAEDetector):
    description = "importance-weighted bound on log p(x) with k samples (Burda et al. 2016)"

    def __init__(self, vae: ConvVAE | None = None, k: int = 16, batch_size: int = 250, seed: int = 0):
        if k < 1:
            raise InputError("vae_iwae: k must be >= 1")
        super().__init__(vae=vae, k=k, batch_size=batch_size, seed=seed)

    def _bound(self, x, eps):
        return self.vae_.iwae(x, k=self.k, eps=eps)
