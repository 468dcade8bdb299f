"""One class's VAE in analysis by synthesis (:mod:`abstain.models.abs`): the reference
architecture of Schott et al. (2019), trained on its own class (:func:`abstain.train_abs.train_abs`)."""
from __future__ import annotations

import torch
from torch import nn


class ClassVAE(nn.Module):
    """One class's VAE (the reference architecture): 85k parameters."""

    def __init__(self, latent: int = 8):
        super().__init__()
        self.encoder = nn.Sequential(                                          # 1 x 28 x 28
            nn.Conv2d(1, 32, 5), nn.BatchNorm2d(32), nn.ELU(),                 # 32 x 24 x 24
            nn.Conv2d(32, 32, 4, 2), nn.BatchNorm2d(32), nn.ELU(),             # 32 x 11 x 11
            nn.Conv2d(32, 64, 3, 2), nn.BatchNorm2d(64), nn.ELU(),             # 64 x 5 x 5
            nn.Conv2d(64, 2 * latent, 5))                                      # 2L x 1 x 1: mean, log-var
        self.decoder = nn.Sequential(                                          # L x 1 x 1
            nn.ConvTranspose2d(latent, 32, 4), nn.BatchNorm2d(32), nn.ELU(),   # 32 x 4 x 4
            nn.ConvTranspose2d(32, 16, 5, 2), nn.BatchNorm2d(16), nn.ELU(),    # 16 x 11 x 11
            nn.ConvTranspose2d(16, 16, 5, 2), nn.BatchNorm2d(16), nn.ELU(),    # 16 x 25 x 25
            nn.ConvTranspose2d(16, 1, 4))                                      # 1 x 28 x 28 (logit)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Latents (N, L) -> images (N, 1, 28, 28) in [0, 1], through the module's own layers
        (gradient to the weights; the inference path `ABS.generate` folds BatchNorm instead)."""
        return torch.sigmoid(self.decoder(z[:, :, None, None]))

    def loss(self, x: torch.Tensor, beta: float) -> torch.Tensor:
        """x (N, 1, 28, 28) -> squared error + beta * KL of one posterior sample, (N,)."""
        mu, logvar = self.encoder(x).flatten(1).chunk(2, dim=1)
        logvar = logvar.clamp(-12.0, 8.0)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = self.decode(z)
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1)
        return (rec - x).pow(2).flatten(1).sum(1) + beta * kl
