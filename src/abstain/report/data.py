"""What the report shows, computed from a run and its scored sets (no HTML, no plotting)."""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import softmax

from ..data.photos import chicken_image
from ..tensors import to_tensor

log = logging.getLogger(__name__)

N_EXAMPLES = 24          # images per example grid
PREFERRED_PARTNER = "fashion_mnist"


@dataclass
class Example:
    """One image of an example grid with its small title."""

    image: np.ndarray
    title: str
    colour: str = "black"


@dataclass
class Chicken:
    """The seed's demo: the MNIST-ified photo, the classifier's softmax and the guard's verdict."""

    image: np.ndarray
    probs: np.ndarray
    verdict: object      # abstain.guard.Verdict


@torch.no_grad()
def class_probs(classifier: torch.nn.Module, images: np.ndarray) -> np.ndarray:
    """Softmax of the classifier for (N, 28, 28) images, in eval mode (float64, (N, C))."""
    was_training = classifier.training
    classifier.eval()
    try:
        logits = classifier.forward_head(classifier.forward_features(to_tensor(images)))
    finally:
        classifier.train(was_training)
    return softmax(logits.numpy().astype(np.float64), axis=1)


def chicken(run) -> Chicken:
    """Run the seed's chicken (a cat photo standing in for it) through classifier and guard."""
    image = chicken_image()
    probs = class_probs(run.classifier, image[None])[0]
    verdict = run.guard.check(image[None])[0]
    return Chicken(image, probs, verdict)


def strip_partner(sets: list) -> object | None:
    """The OOD set the sorted strips compare with: FashionMNIST if present, else the first."""
    oods = sets[1:]
    for s in oods:
        if s.name == PREFERRED_PARTNER:
            return s
    return oods[0] if oods else None


def strip_detectors(guard_detector: str, available) -> list[str]:
    """MSP, the guard's detector and vae_elbo, in that order, each once, if they were scored."""
    wanted = ["msp", guard_detector, "vae_elbo"]
    return [d for i, d in enumerate(wanted) if d in available and d not in wanted[:i]]


def _sample(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Up to n sorted indices where mask is true, drawn without replacement."""
    idx = np.flatnonzero(mask)
    if len(idx) > n:
        idx = np.sort(rng.choice(idx, size=n, replace=False))
    return idx


def _title(class_names: list[str], probs: np.ndarray, prefix: str = "") -> str:
    label = int(probs.argmax())
    return f"{prefix}{class_names[label]} ({probs.max():.0%})"


def in_examples(run, test, accepted: bool, n: int = N_EXAMPLES, seed: int = 0) -> list[Example]:
    """Test digits the guard accepted (or abstained on): predicted class and confidence.

    Titles are red where the prediction is wrong.
    """
    guard, data = run.guard, run.dataset
    mask = guard.decide(test.scores[guard.detector]) == accepted
    probs = softmax(test.logits.astype(np.float64), axis=1)
    out = []
    for i in _sample(mask, n, np.random.default_rng(seed)):
        wrong = int(probs[i].argmax()) != int(data.y_test[i])
        out.append(Example(test.images[i], _title(guard.class_names, probs[i]),
                           "#d62728" if wrong else "black"))
    return out


def ood_examples(run, oods: list, accepted: bool, n: int = N_EXAMPLES, seed: int = 0) -> list[Example]:
    """OOD images the guard accepted (or abstained on), drawn evenly across the sets."""
    guard = run.guard
    rng = np.random.default_rng(seed)
    pools = []
    for s in oods:
        mask = guard.decide(s.scores[guard.detector]) == accepted
        pools.append((s, list(rng.permutation(np.flatnonzero(mask)))))
    out = []
    while len(out) < n and any(p for _, p in pools):
        for s, pool in pools:
            if pool and len(out) < n:
                i = pool.pop()
                probs = softmax(s.logits[i].astype(np.float64))
                out.append(Example(s.images[i], _title(guard.class_names, probs, f"{s.name}\n")))
    return out


@torch.no_grad()
def reconstructions(run, items: list[tuple[str, np.ndarray]]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(caption + guard-detector score, original, VAE mean reconstruction) for each image."""
    images = np.stack([img for _, img in items]).astype(np.uint8)
    vae = run.vae
    was_training = vae.training
    vae.eval()
    try:
        recon = vae.reconstruct(to_tensor(images))[:, 0].numpy()
    finally:
        vae.train(was_training)
    scores, _ = run.guard.scores(images, [run.guard.detector])
    det = run.guard.detector
    return [(f"{cap}\n{det} {scores[det][k]:.4g}", images[k], recon[k])
            for k, (cap, _img) in enumerate(items)]


def reconstruction_items(run, sets: list, chicken_img: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """A test digit, the chicken, and one FashionMNIST item (or one image of the first OOD set)."""
    test = sets[0]
    items = [(f"test digit ({run.dataset.class_names[int(run.dataset.y_test[0])]})", test.images[0]),
             ("the 'chicken'", chicken_img)]
    partner = strip_partner(sets)
    if partner is not None and len(partner.images):
        items.append((f"{partner.name} #0", partner.images[0]))
    return items
