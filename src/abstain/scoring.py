"""Scores of every detector on a named set of images, cached under RUN/scores/.

The cache is keyed by the run's fingerprint (its guard, checkpoints and the scoring code), the
set's name and a hash of its images, so a second evaluation of the same run costs seconds.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
from scipy.special import softmax

from .atomic import atomic_path
from .run import Run
from .tensors import images_digest

log = logging.getLogger(__name__)


@dataclass
class SetScores:
    name: str
    kind: str                       # "in", "far", "shift", "transform", "dataset"
    images: np.ndarray
    logits: np.ndarray
    scores: dict[str, np.ndarray] = field(default_factory=dict)
    #: for failure columns: which test images are the clean partners, and which rows count
    partner: np.ndarray | None = None       # indices into the test set
    mask: np.ndarray | None = None          # rows that enter the metrics (e.g. attacks that fooled)
    info: dict = field(default_factory=dict)  # extra fields for the result rows (success rate, ...)

    def roc_pair(self, test: "SetScores") -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """(in-distribution scores, failure scores) per detector, as the metrics use them."""
        if self.partner is None:
            return test.scores, self.scores
        m = slice(None) if self.mask is None else self.mask
        return ({d: v[self.partner][m] for d, v in test.scores.items()},
                {d: v[m] for d, v in self.scores.items()})

    @property
    def max_softmax(self) -> np.ndarray:
        return softmax(self.logits.astype(np.float64), axis=1).max(1)


def score_set(run: Run, name: str, images: np.ndarray, kind: str) -> SetScores:
    """Every detector's scores on one set, from the cache when it is fresh."""
    cache = run.path / "scores" / f"{name}.{len(images)}.npz"
    fp, digest = run.fingerprint, images_digest(images)
    names = list(run.guard.detectors)
    if cache.exists():
        try:
            with np.load(cache, allow_pickle=False) as z:
                if str(z["fingerprint"]) == fp and str(z["images"]) == digest and \
                        all(f"score_{n}" in z for n in names):
                    return SetScores(name, kind, images, z["logits"], {n: z[f"score_{n}"] for n in names})
        except (OSError, ValueError, KeyError):
            log.warning("ignoring unreadable score cache %s", cache)
    scores, logits = run.guard.scores(images)
    with atomic_path(cache) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, fingerprint=np.array(fp), images=np.array(digest), logits=logits,
                     **{f"score_{n}": v for n, v in scores.items()})
    return SetScores(name, kind, images, logits, scores)
