"""One forward pass per batch: the views (logits, features, layers, images) every detector reads."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .models.classifier import CNN
from .tensors import to_tensor


@dataclass(frozen=True)
class Layers:
    """The "layers" view: the images and the classifier's per-stage activations on them
    (``CNN.forward_layers``: one (N, d) array per stage, the penultimate features last), so
    that layer detectors need no forward pass of their own."""

    images: np.ndarray
    acts: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, rows) -> "Layers":
        return Layers(self.images[rows], [a[rows] for a in self.acts])


@torch.no_grad()
def compute_views(classifier: CNN, images: np.ndarray, batch_size: int = 125) -> dict:
    """images (N, 28, 28) -> {"images", "features" (N, D), "logits" (N, C), "layers"
    (:class:`Layers`)}, features and logits as numpy arrays, from one pass.

    Small batches: 125 images per pass run 2.6x faster than 1,000 on a 2-core CPU (the
    activations stay in cache), with the same numbers."""
    classifier.eval()
    stages, logits = [], []
    for i in range(0, len(images), batch_size):
        acts = classifier.forward_layers(to_tensor(images[i:i + batch_size]))
        stages.append([a.numpy() for a in acts])
        logits.append(classifier.forward_head(acts[-1]).numpy())
    acts = [np.concatenate([s[k] for s in stages]) for k in range(len(stages[0]))]
    return {"images": images, "features": acts[-1], "logits": np.concatenate(logits),
            "layers": Layers(images, acts)}
