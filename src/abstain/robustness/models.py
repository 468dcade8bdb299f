"""The models `abstain robustness` compares, by name: one small registry of factories.

A model is any torch module in eval mode mapping (N, 1, 28, 28) floats in [0, 1] to logits
(N, 10). It may also offer `reconstructions(x)` -> (N, 10, 28, 28), one image per class (ABS
does); the decision-based search then also walks toward those.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from ..errors import InputError
from ..run_models import MODELS
from .adversarial_training import FILE as MADRY_FILE, adversarial_cnn


@dataclass(frozen=True)
class ModelEntry:
    factory: Callable[..., nn.Module]    # factory(run, progress, abs_mode) -> model in eval mode
    slow: bool = False                   # slow models get the smaller attack budget
    about: str = ""
    available: Callable[..., bool] = lambda run: True
    file: str = MODELS["classifier"].file    # its checkpoint in the run folder (named in the JSON)


ROBUSTNESS_MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, slow: bool = False, about: str = "", available=lambda run: True,
                   file: str = MODELS["classifier"].file):
    def wrap(factory):
        ROBUSTNESS_MODELS[name] = ModelEntry(factory, slow, about, available, file)
        return factory
    return wrap


def parse_models(text: str | None, run) -> list[str]:
    """'cnn,madry' -> ['cnn', 'madry'], checked before any attack runs; None -> every
    registered model the run has (cnn, madry, and the ABS pair when the run has an ABS model)."""
    if text is None:
        return [n for n, e in ROBUSTNESS_MODELS.items() if e.available(run)]
    names = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [n for n in names if n not in ROBUSTNESS_MODELS]
    if unknown or not names:
        raise InputError(f"unknown model(s) {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(ROBUSTNESS_MODELS)}")
    for n in names:
        if not ROBUSTNESS_MODELS[n].available(run):
            ROBUSTNESS_MODELS[n].factory(run)          # raises the model's own InputError
    return list(dict.fromkeys(names))


def load_model(name: str, run, progress: bool = False, abs_mode: str = "fast") -> nn.Module:
    """The named model in eval mode; ABS models run the `abs_mode` inference."""
    return ROBUSTNESS_MODELS[name].factory(run, progress, abs_mode).eval()


@register_model("cnn", about="the run's classifier (the foundation CNN)")
def _cnn(run, progress: bool = False, abs_mode: str = "fast") -> nn.Module:
    return run.classifier


@register_model("madry", file=MADRY_FILE, about="the same CNN, adversarially trained (FGSM with random "
                "start, Wong et al. 2020) at L-inf eps 0.3; trained into the run folder on first use")
def _madry(run, progress: bool = False, abs_mode: str = "fast") -> nn.Module:
    return adversarial_cnn(run, progress=progress)


def _abs(run, binary: bool, mode: str) -> nn.Module:
    """Resolved lazily: the run's ABS model in the given inference mode, binarized for binary_abs."""
    model = run.require_abs("leave abs / binary_abs out of --models").with_mode(mode)
    return model.binary() if binary else model


def _has_abs(run) -> bool:
    return run.abs_model is not None


@register_model("abs", slow=True, available=_has_abs, file=MODELS["abs"].file,
                about="analysis by synthesis: one VAE per class (Schott et al. 2019)")
def _abs_plain(run, progress: bool = False, abs_mode: str = "fast") -> nn.Module:
    return _abs(run, False, abs_mode)


@register_model("binary_abs", slow=True, available=_has_abs, file=MODELS["abs"].file,
                about="ABS on inputs binarized at 0.5 (straight-through gradients)")
def _abs_binary(run, progress: bool = False, abs_mode: str = "fast") -> nn.Module:
    return _abs(run, True, abs_mode)
