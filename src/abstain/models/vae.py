"""A convolutional VAE with a per-image ELBO and an importance-weighted bound on log p(x).

Two pixel likelihoods (``VAEConfig.likelihood``):

* ``"bernoulli"``: independent Bernoulli pixels with the grey level in [0, 1] as target (the
  usual choice for MNIST VAEs). Not a normalised density of 8-bit images, so its "bits" are not
  comparable with a compressor's code length.
* ``"logistic"``: a discretised logistic per pixel over the 256 grey levels (Salimans et al.
  2017, PixelCNN++), with the decoder giving a mean and a log-scale per pixel; the end bins take
  the tails. A proper probability of the 8-bit image, so -bound / (784 ln 2) is bits per dim.

All bounds are in nats per image; higher = more likely.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .layout import EvalChannelsLast


LIKELIHOODS = ("bernoulli", "logistic")


@dataclass(frozen=True)
class VAEConfig:
    latent: int = 16
    channels: tuple[int, int] = (32, 64)
    hidden: int = 256
    likelihood: str = "logistic"           # or "bernoulli" (see the module docstring)

    def __post_init__(self):
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")


def discretised_logistic(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor,
                         levels: int = 256) -> torch.Tensor:
    """log P(x) per pixel of grey levels x in [0, 1] (multiples of 1/(levels-1)) under a logistic
    of the given mean and scale, discretised into `levels` bins; the end bins take the tails."""
    half = 0.5 / (levels - 1)
    inv_s = torch.exp(-log_scale.clamp(-7.0, 3.0))
    plus, minus = inv_s * (x - mean + half), inv_s * (x - mean - half)
    log_cdf_plus = F.logsigmoid(plus)                    # log P(X <= x + half), bin 0's mass
    log_sf_minus = F.logsigmoid(minus) - minus           # log (1 - sigmoid(minus)), last bin's mass
    mid = inv_s * (x - mean)
    # mass of an interior bin: sigmoid(plus) - sigmoid(minus), computed stably; below 1e-5 use
    # the density at the centre times the bin width
    cdf_delta = torch.sigmoid(plus) - torch.sigmoid(minus)
    log_pdf_mid = mid - log_scale.clamp(-7.0, 3.0) - 2.0 * F.softplus(mid) + math.log(2 * half)
    interior = torch.where(cdf_delta > 1e-5, torch.log(cdf_delta.clamp_min(1e-12)), log_pdf_mid)
    return torch.where(x < half, log_cdf_plus, torch.where(x > 1 - half, log_sf_minus, interior))


@dataclass(frozen=True)
class BackgroundConfig:
    """The background model of a likelihood ratio (Ren et al. 2019): trained on images whose
    pixels are each replaced, with probability `mutation`, by a uniform random grey level."""

    mutation: float = 0.3      # chosen by bench/likelihood.py --grid without MNIST (see README)


def mutate(x: torch.Tensor, rate: float, gen: torch.Generator | None = None) -> torch.Tensor:
    """Replace each pixel of x (values in [0, 1]) by a uniform random value with probability `rate`."""
    if rate <= 0:
        return x
    hit = torch.rand(x.shape, generator=gen) < rate
    return torch.where(hit, torch.rand(x.shape, generator=gen), x)


class ConvVAE(EvalChannelsLast):
    def __init__(self, config: VAEConfig = VAEConfig()):
        super().__init__()
        self.config = config
        c1, c2, h, z = *config.channels, config.hidden, config.latent
        self.encoder = nn.Sequential(
            nn.Conv2d(1, c1, 4, 2, 1), nn.ELU(),                  # (N, c1, 14, 14)
            nn.Conv2d(c1, c2, 4, 2, 1), nn.ELU(),                 # (N, c2, 7, 7)
            nn.Flatten(), nn.Linear(c2 * 49, h), nn.ELU(),
            nn.Linear(h, 2 * z),                                  # (N, 2z): mean, log-variance
        )
        self.decoder = nn.Sequential(
            nn.Linear(z, h), nn.ELU(), nn.Linear(h, c2 * 49), nn.ELU(),
            nn.Unflatten(1, (c2, 7, 7)),
            nn.ConvTranspose2d(c2, c1, 4, 2, 1), nn.ELU(),        # (N, c1, 14, 14)
            # (N, 1, 28, 28) Bernoulli logits, or (N, 2, 28, 28) logistic mean logit, log-scale
            nn.ConvTranspose2d(c1, 1 if config.likelihood == "bernoulli" else 2, 4, 2, 1),
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, z) -> decoder output (N, 1 or 2, 28, 28); channel 0 is a mean logit."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction (decoder at the posterior mean), in [0, 1]."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu)[:, :1])

    def log_likelihood(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over pixels -> (N,); `out` is the decoder output."""
        if self.config.likelihood == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").flatten(1).sum(1)
        return discretised_logistic(x, torch.sigmoid(out[:, :1]), out[:, 1:]).flatten(1).sum(1)

    def elbo_terms(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One-sample ELBO split into distortion (-log p(x|z)) and rate (KL), each (N,).

        `eps` (latent,) or (N, latent): the standard-normal draw to use; fresh noise when None."""
        mu, logvar = self.encode(x)
        eps = torch.randn_like(mu) if eps is None else eps.to(mu).expand_as(mu)
        z = mu + eps * (0.5 * logvar).exp()
        distortion = -self.log_likelihood(self.decode(z), x)
        rate = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return {"elbo": -(distortion + rate), "distortion": distortion, "rate": rate}

    def elbo(self, x: torch.Tensor, eps: torch.Tensor | None = None) -> torch.Tensor:
        return self.elbo_terms(x, eps)["elbo"]

    def iwae(self, x: torch.Tensor, k: int = 16, eps: torch.Tensor | None = None) -> torch.Tensor:
        """Importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q  -> (N,).

        `eps` (k, latent): standard-normal draws shared by every image (so an image's bound
        does not depend on the rest of its batch); fresh noise when None."""
        mu, logvar = self.encode(x)
        std = (0.5 * logvar).exp()
        if eps is None:
            eps = torch.randn((k, *mu.shape), device=x.device, dtype=x.dtype)
        else:
            eps = eps.to(mu)[:, None, :].expand(k, *mu.shape)
        z = mu + eps * std                                               # (k, N, z)
        logits = self.decode(z.flatten(0, 1))                            # (k*N, 1, 28, 28)
        log_px_z = self.log_likelihood(logits, x.repeat(k, 1, 1, 1)).view(k, -1)
        log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + math.log(2 * math.pi) + logvar).sum(-1)
        return torch.logsumexp(log_px_z + log_pz - log_qz, dim=0) - math.log(k)
