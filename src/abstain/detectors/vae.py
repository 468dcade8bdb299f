"""p(x) gates from a VAE trained on the in-distribution images (the chicken-audit seed).

``vae_elbo``: the evidence lower bound per image; ``vae_iwae``: the importance-weighted
bound with k samples (Burda et al. 2016), tighter as k grows. Both in nats; higher = more likely.
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import torch

from ..errors import InputError, NotFittedError
from ..models.vae import ConvVAE, VAEConfig
from ..tensors import as_images, images_digest, to_tensor
from ..train import TrainConfig, train_vae
from .base import Detector, register


STATISTICS = ("iwae", "elbo", "rate", "distortion")
_MEMO: OrderedDict = OrderedDict()          # the last few statistics computed, shared by detectors


@torch.no_grad()
def vae_statistics(vae: ConvVAE, X: np.ndarray, k: int = 16, seed: int = 0,
                   batch_size: int = 250) -> dict[str, np.ndarray]:
    """Per-image statistics of a VAE, each (N,) float64 in nats: the importance-weighted bound
    with k samples, the ELBO (analytic KL, distortion averaged over the same k samples), the rate
    (KL of the posterior from the prior) and the distortion (-E_q log p(x|z)).

    The k standard-normal draws are fixed by `seed` and shared by every image, so an image's
    statistics never depend on its batch. The last few results are memoised (keyed by the model,
    k, seed and the images' bytes): the detectors built on one VAE share one pass."""
    X = as_images(X, "vae statistics")
    key = (id(vae), k, seed, images_digest(X))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    eps = torch.randn((k, vae.config.latent), generator=torch.Generator().manual_seed(seed))
    vae.eval()
    parts = [_batch_statistics(vae, to_tensor(X[i:i + batch_size]), eps) for i in range(0, len(X), batch_size)]
    out = {s: np.concatenate([p[s] for p in parts]) for s in STATISTICS}
    _MEMO[key] = out
    while len(_MEMO) > 8:
        _MEMO.popitem(last=False)
    return out


def _batch_statistics(vae: ConvVAE, x: torch.Tensor, eps: torch.Tensor) -> dict[str, np.ndarray]:
    k = len(eps)
    mu, logvar = vae.encode(x)
    z = mu + eps[:, None, :] * (0.5 * logvar).exp()                          # (k, N, latent)
    # one decoder pass per draw: k passes over N rows are about twice as fast on a CPU as one
    # pass over k * N rows (the activations stay in cache), with the same numbers row by row
    log_px_z = torch.stack([vae.log_likelihood(vae.decode(zj), x) for zj in z])  # (k, N)
    log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
    log_qz = -0.5 * (eps[:, None, :].pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
    iwae = torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)
    rate = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
    distortion = -log_px_z.mean(0)
    out = {"iwae": iwae, "elbo": -(distortion + rate), "rate": rate, "distortion": distortion}
    return {s: v.double().numpy() for s, v in out.items()}


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

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        return vae_statistics(self.vae_, as_images(X, f"{self.name} scores"), self.k, self.seed,
                              self.batch_size)["iwae"]
