"""Fixes for the p(x) gate that rates simpler data more likely (seed 001, Nalisnick et al. 2019).

All four read the run's VAE through :func:`abstain.detectors.vae.vae_statistics` (one pass,
shared), and none of them sees out-of-distribution data when fitted:

``llr``         likelihood ratio (Ren et al. 2019): log p(x) - log p_bg(x), where the background
                VAE was trained on images with pixels randomly replaced by noise (see
                :class:`abstain.models.vae.BackgroundConfig`); both terms are IWAE bounds.
``complexity``  input complexity (Serra et al. 2020): log2 p(x) + L(x), L = code length in bits
                of the 8-bit image under a lossless compressor: zlib (default) or PNG. zlib was
                chosen on FashionMNIST validation images vs ``letters_mnistified`` (AUROC 0.939
                vs 0.912 for PNG; bench/likelihood.py), without MNIST.
``typicality``  (Nalisnick et al. 2019): minus the distance of -log p(x) from its mean on
                validation images; :meth:`Typicality.score_batches` tests batches of M inputs.
``dose``        density of states (Morningstar et al. 2021): the VAE's per-image statistics
                (IWAE bound, ELBO, rate, distortion), each modelled by a 1-D Gaussian KDE on
                validation images (Scott's bandwidth); score = sum of their log densities.
"""
from __future__ import annotations

import io
import math
import zlib

import numpy as np
import torch
from PIL import Image

from ..errors import InputError, NotFittedError
from ..models.vae import ConvVAE
from ..tensors import as_images
from .base import Detector, register
from .vae import STATISTICS, vae_statistics

COMPRESSORS = ("png", "zlib")


class _StatisticsDetector(Detector):
    input = "images"
    model_params = ("vae",)

    def __init__(self, vae: ConvVAE | None = None, k: int = 16, seed: int = 0):
        self.vae = vae
        self.k = k
        self.seed = seed

    def _stats(self, X, what: str) -> dict[str, np.ndarray]:
        if self.vae is None:
            raise NotFittedError(f"{self.name}: needs the run's trained VAE (vae=...)")
        return vae_statistics(self.vae, as_images(X, f"{self.name} {what}"), self.k, self.seed)

    def _restore(self) -> None:
        if self.vae is None:
            raise NotFittedError(f"{self.name}: loaded without its VAE")


@register("llr")
class LikelihoodRatio(_StatisticsDetector):
    description = "log p(x) - log p_background(x), background VAE trained on mutated images (Ren et al. 2019)"
    model_params = ("vae", "vae_background")

    def __init__(self, vae: ConvVAE | None = None, vae_background: ConvVAE | None = None,
                 k: int = 16, seed: int = 0):
        super().__init__(vae=vae, k=k, seed=seed)
        self.vae_background = vae_background

    def fit(self, X, y=None):
        if self.vae_background is None:
            raise NotFittedError("llr: needs the background VAE (vae_background=...)")
        self.mean_train_ratio_ = float(np.mean(self._ratio(X[:1000], "fit")))
        return self

    def _ratio(self, X, what):
        fg = self._stats(X, what)["iwae"]
        bg = vae_statistics(self.vae_background, as_images(X), self.k, self.seed)["iwae"]
        return fg - bg

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        return self._ratio(X, "scores")


def code_length_bits(images: np.ndarray, compressor: str = "png") -> np.ndarray:
    """Lossless code length in bits of each 8-bit image (N, 28, 28) -> (N,) float64."""
    if compressor not in COMPRESSORS:
        raise InputError(f"compressor must be one of {COMPRESSORS}, got {compressor!r}")
    images = as_images(images)
    if images.dtype != np.uint8:
        images = np.rint(images * 255).astype(np.uint8)
    out = np.empty(len(images))
    for i, im in enumerate(images):
        if compressor == "zlib":
            out[i] = 8 * len(zlib.compress(im.tobytes(), 9))
        else:
            buf = io.BytesIO()
            Image.fromarray(im).save(buf, format="PNG", compress_level=9)
            out[i] = 8 * len(buf.getvalue())
    return out


@register("complexity")
class Complexity(_StatisticsDetector):
    description = "log2 p(x) + code length of x in bits under zlib or PNG (Serra et al. 2020)"

    def __init__(self, vae: ConvVAE | None = None, compressor: str = "zlib", k: int = 16, seed: int = 0):
        super().__init__(vae=vae, k=k, seed=seed)
        self.compressor = compressor

    def fit(self, X, y=None):
        if self.compressor not in COMPRESSORS:
            raise InputError(f"complexity: compressor must be one of {COMPRESSORS}")
        self.mean_train_bits_ = float(code_length_bits(X[:1000], self.compressor).mean())
        return self

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        log2_p = self._stats(X, "scores")["iwae"] / math.log(2)
        return log2_p + code_length_bits(X, self.compressor)


@register("typicality")
class Typicality(_StatisticsDetector):
    description = "minus |NLL - mean validation NLL| (typicality test, Nalisnick et al. 2019)"
    fit_split = "val"

    def fit(self, X, y=None):
        nll = -self._stats(X, "fit")["iwae"]
        self.typical_nll_, self.nll_std_ = float(nll.mean()), float(nll.std())
        return self

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        return -np.abs(-self._stats(X, "scores")["iwae"] - self.typical_nll_)

    def score_batches(self, X, batch: int) -> np.ndarray:
        """One score per consecutive group of `batch` images (the rest dropped): minus the
        distance of the group's mean NLL from the typical NLL (the batch typicality test)."""
        if batch < 1:
            raise InputError("typicality: batch must be >= 1")
        self.check_fitted()
        nll = -self._stats(X, "scores")["iwae"]
        m = len(nll) // batch
        if m == 0:
            raise InputError(f"typicality: fewer than {batch} images")
        return -np.abs(nll[:m * batch].reshape(m, batch).mean(1) - self.typical_nll_)


@register("dose")
class DensityOfStates(_StatisticsDetector):
    description = "sum of 1-D KDE log densities of the VAE's IWAE, ELBO, rate and distortion (DoSE)"
    fit_split = "val"

    def fit(self, X, y=None):
        s = self._stats(X, "fit")
        self.stats_ = np.stack([s[n] for n in STATISTICS], 1)                     # (n, 4)
        n = len(self.stats_)
        self.bandwidth_ = self.stats_.std(0) * n ** (-1 / 5)                     # Scott's rule, 1-D
        return self

    @torch.no_grad()
    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        s = self._stats(X, "scores")
        q = torch.as_tensor(np.stack([s[n] for n in STATISTICS], 1))              # (N, 4)
        ref, h = torch.as_tensor(self.stats_), torch.as_tensor(self.bandwidth_)
        total = torch.zeros(len(q), dtype=torch.float64)
        for d in range(q.shape[1]):
            for i in range(0, len(q), 250):          # 250 rows: the (b, n) block stays in cache
                u = (q[i:i + 250, d:d + 1] - ref[None, :, d]) / h[d]                   # (b, n)
                log_k = torch.logsumexp(-0.5 * u * u, dim=1)
                total[i:i + 250] += log_k - math.log(len(ref) * h[d] * math.sqrt(2 * math.pi))
        return total.numpy()
