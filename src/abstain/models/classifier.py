"""The MNIST-family CNN: features and head are separate, public methods (timm style)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .layout import EvalChannelsLast


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    hidden: int = 128          # size of the penultimate feature vector
    num_classes: int = 10
    dropout: float = 0.3
    mean: float = 0.1307       # input normalisation, applied inside the model
    std: float = 0.3081


class CNN(EvalChannelsLast):
    """conv5-pool-conv5-pool-fc: inputs (N, 1, 28, 28) floats in [0, 1]."""

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.body = nn.Sequential(
            nn.Conv2d(1, c1, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),      # (N, c1, 14, 14)
            nn.Conv2d(c1, c2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),     # (N, c2, 7, 7)
            nn.Flatten(), nn.Dropout(config.dropout),
            nn.Linear(c2 * 49, config.hidden), nn.ReLU(),                    # (N, hidden)
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 28, 28) in [0, 1] -> penultimate features (N, hidden)."""
        return self.body((x - self.config.mean) / self.config.std)

    def forward_layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Per-stage features for layer ensembles: [conv1 (N, c1), conv2 (N, c2)] averaged over
        space, then the penultimate features (N, hidden)."""
        h, out = (x - self.config.mean) / self.config.std, []
        for i, layer in enumerate(self.body):
            h = layer(h)
            if i in (1, 4):                      # after each conv's ReLU
                out.append(h.mean((2, 3)))
        return out + [h]

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        """features (N, hidden) -> logits (N, num_classes)."""
        return self.head(self.drop(f))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))
