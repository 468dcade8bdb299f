"""A convolutional VAE with a per-image ELBO and an importance-weighted bound on log p(x).

Likelihood: independent Bernoulli pixels with the grey level in [0, 1] as target (the usual
choice for MNIST VAEs). All bounds are in nats per image; higher = more likely.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class VAEConfig:
    latent: int = 16
    channels: tuple[int, int] = (32, 64)
    hidden: int = 256


class ConvVAE(nn.Module):
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
            nn.ConvTranspose2d(c1, 1, 4, 2, 1),                   # (N, 1, 28, 28) logits
        )

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 8.0)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, z) -> pixel logits (N, 1, 28, 28)."""
        return self.decoder(z)

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean reconstruction (decoder at the posterior mean), in [0, 1]."""
        mu, _ = self.encode(x)
        return torch.sigmoid(self.decode(mu))

    @staticmethod
    def log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """log p(x | z) summed over pixels -> (N,)."""
        return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").flatten(1).sum(1)

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
