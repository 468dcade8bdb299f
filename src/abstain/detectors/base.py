"""The detector contract and the one registry every command reads.

A detector is an sklearn-style estimator:

* ``__init__`` only stores keyword hyperparameters;
* ``fit(X, y=None)`` learns fields whose names end in ``_`` and returns ``self``;
* ``score_samples(X)`` returns a 1-D float array, **higher = more in-distribution**;
* using it before ``fit`` raises :class:`abstain.errors.NotFittedError`.

``input`` says which view of a batch the detector consumes, so several detectors share one
forward pass: ``"logits"`` and ``"features"`` come from the classifier, ``"layers"`` are the
images with the classifier's per-stage activations (:class:`abstain.views.Layers`), ``"images"`` the
(N, 28, 28) images themselves (input-space detectors such as the VAE), and ``"scores"`` the
scores of other detectors of the same guard, one column per name in the detector's ``parts``
(combinations such as ``union``; the guard scores the parts first and fits the combinations
when it calibrates, on the validation images).
"""
from __future__ import annotations

import inspect
from typing import ClassVar

import numpy as np

from ..errors import InputError, NotFittedError

DETECTORS: dict[str, type["Detector"]] = {}
VIEWS = ("logits", "features", "layers", "images", "scores")


def register(name: str):
    """Class decorator: add a detector class to the registry under `name`."""
    def wrap(cls):
        if name in DETECTORS:
            raise ValueError(f"detector {name!r} registered twice")
        if cls.input not in VIEWS:
            raise ValueError(f"{cls.__name__}.input must be one of {VIEWS}")
        cls.name = name
        DETECTORS[name] = cls
        return cls
    return wrap


def make_detector(name: str, **params) -> "Detector":
    if name not in DETECTORS:
        raise InputError(f"unknown detector {name!r}; known: {', '.join(sorted(DETECTORS))}")
    return DETECTORS[name](**params)


class Detector:
    name: ClassVar[str] = ""
    input: ClassVar[str] = "logits"
    #: constructor parameters holding trained torch models; not saved with the detector's
    #: state but handed back by the run that owns the model (see abstain.run)
    model_params: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    #: which split a run fits the detector on ("train", or "val" for calibration-type fits)
    fit_split: ClassVar[str] = "train"

    def fit(self, X, y=None) -> "Detector":
        raise NotImplementedError

    def score_samples(self, X) -> np.ndarray:
        raise NotImplementedError

    # -- sklearn-style helpers -------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        if cls.__init__ is object.__init__:
            return []
        sig = inspect.signature(cls.__init__)
        kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        return [n for n, p in sig.parameters.items() if n != "self" and p.kind in kinds]

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in self.param_names()}

    def learned(self) -> dict[str, np.ndarray]:
        """Fitted fields (trailing underscore) that are arrays or numbers."""
        out = {}
        for k, v in vars(self).items():
            if k.endswith("_") and not k.startswith("_") and isinstance(v, (np.ndarray, float, int)):
                out[k] = np.asarray(v)
        return out

    def _restore(self) -> None:
        """Called after learned fields were loaded from disk; re-link models and the like."""

    def check_fitted(self) -> None:
        if not any(k.endswith("_") and not k.startswith("_") for k in vars(self)):
            raise NotFittedError(f"detector {self.name!r} is not fitted; call fit() first")

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.get_params().items() if k not in self.model_params}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def check_scores_input(X, ndim: int, what: str) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != ndim or len(X) == 0:
        raise InputError(f"{what}: expected a non-empty {ndim}-D array, got shape {X.shape}")
    if np.issubdtype(X.dtype, np.floating) and not np.isfinite(X).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return X
