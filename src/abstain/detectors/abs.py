"""Analysis by synthesis as a detector: how well the best of ten class generators explains x.

``abs``: minus the smallest scaled per-class loss, max_y -a_y l_y(x) with
l_y(x) = (||x - G_y(z*)||^2 + 1/2 ||z*||^2) / 784 and the class scales a_y (Schott et al. 2019;
see abstain.models.abs).
Higher = better explained = more in-distribution. Scores use the model's ``search`` inference
by default (prototype search alone; an evaluation scores
~40,000 images): each class loss is then the best of 2,000 decoded prototypes, an upper bound
of the optimised loss.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from ..errors import InputError, NotFittedError
from ..models.abs import ABS, ABSConfig
from ..tensors import as_images, images_digest, to_tensor
from ..train import TrainConfig
from .base import Detector, register

_MEMO: OrderedDict = OrderedDict()      # the last few logits computed: detector and CLI share them


@torch.no_grad()
def abs_logits(model: ABS, X: np.ndarray, mode: str = "fast", batch_size: int = 500) -> np.ndarray:
    """ABS logits -a l (N, C) of images X (N, 28, 28) in the given inference mode; memoised on
    the model, mode and the images' bytes."""
    X = as_images(X, "abs logits")
    key = (id(model), model._token(), str(mode), model.binarize, images_digest(X))
    if key in _MEMO:
        _MEMO.move_to_end(key)
        return _MEMO[key]
    view = model.with_mode(mode).eval()
    out = np.concatenate([view(to_tensor(X[i:i + batch_size])).double().numpy()
                          for i in range(0, len(X), batch_size)])
    _MEMO[key] = out
    while len(_MEMO) > 4:
        _MEMO.popitem(last=False)
    return out


def abs_predict(model: ABS, X: np.ndarray, mode: str = "fast") -> tuple[np.ndarray, np.ndarray]:
    """ABS logits -a l (N, C) of images X and its calibrated confidences (N, C) (memoised logits)."""
    logits = abs_logits(model, X, mode)
    return logits, model.confidence(torch.from_numpy(logits)).double().numpy()


def abs_explain(model: ABS, X: np.ndarray, mode: str = "fast") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logits (N, C), confidences (N, C) and the per-class reconstructions (N, C, 28, 28) of
    images X, from one ABS solve. Confidences in float64, as `abs_predict`: in float32
    exp(-440 l) underflows against the offset, near-uniform outputs tie and the argmax is no
    longer the best-explaining class."""
    logits, recs = model.with_mode(mode).explain(to_tensor(as_images(X, "abs explain")))
    logits = logits.double()
    return logits.numpy(), model.confidence(logits).numpy(), recs.numpy()


@register("abs")
class ABSDetector(Detector):
    input = "images"
    model_params = ("abs",)
    description = "analysis by synthesis: minus the smallest scaled class loss of ten class VAEs (Schott et al. 2019)"

    def __init__(self, abs: ABS | None = None, mode: str = "search", batch_size: int = 500, seed: int = 0):
        self.abs = abs
        self.mode = mode
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X, y=None):
        """Use the given trained ABS model, or train one on labelled X when none was given."""
        X = as_images(X, f"{self.name} fit")
        if self.abs is None:
            if y is None:
                raise InputError("abs: fitting without a trained ABS model needs labels y")
            from ..train_abs import train_abs
            model = ABS(ABSConfig())
            y = np.asarray(y)
            k = max(len(X) // 10, 1)
            train_abs(model, X[:-k], y[:-k], X[-k:], y[-k:], TrainConfig(epochs=2, shift=1, seed=self.seed))
            self.abs_ = model
        else:
            self.abs_ = self.abs
        try:
            self.abs_.inference(self.mode)        # unknown modes fail here, not at scoring
        except ValueError as exc:
            raise InputError(f"abs: {exc}") from exc
        self.abs_.eval()
        self.n_train_ = len(X)
        return self

    def _restore(self) -> None:
        if self.abs is None:
            raise NotFittedError(f"{self.name}: loaded without its ABS model")
        self.abs_ = self.abs.eval()

    def score_samples(self, X) -> np.ndarray:
        self.check_fitted()
        X = as_images(X, f"{self.name} scores")
        return abs_logits(self.abs_, X, self.mode, self.batch_size).max(1)
