"""A run: one dataset's classifier, VAE, fitted detectors and calibrated guard, in one folder.

Layout of DIR::

    run.json                  RunConfig, dataset, abstain version, training summaries
    classifier.safetensors    (+ .json)   weights with metadata
    vae.safetensors           (+ .json)
    vae_background.safetensors, ...   the other models its detectors need (see MODELS)
    detectors.safetensors     fitted detector fields, guard.json: detector specs + threshold
    scores/                   cached per-set scores (see abstain.evaluate)
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import time
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import __version__, train_pool
from .atomic import write_json
from .checkpoint import config_from_dict, config_to_dict, load_module, load_or_train, matches
from .data.datasets import Dataset, load_dataset
from .detectors import DETECTORS, make_detector
from .errors import InputError, RunError
from .guard import Guard
from .models.abs import ABS, ABSConfig
from .models.classifier import CNN, ClassifierConfig
from .models.vae import BackgroundConfig, ConvVAE, VAEConfig
from .train import TrainConfig, accuracy, train_classifier, train_vae
from .train_abs import train_abs
from .views import compute_views

log = logging.getLogger(__name__)


# more instances can be added per run, e.g. Lee et al.'s input pre-processing:
# {"mahalanobis_pre": {"detector": "mahalanobis_layers", "eps": 0.002}} (measured: no change here)
DEFAULT_VARIANTS = {"gmm_k10": {"detector": "gmm", "n_components": 10},
                    "complexity_png": {"detector": "complexity", "compressor": "png"},
                    "mahalanobis_layers_centred": {"detector": "mahalanobis_layers", "recentre": True}}

#: the `union` guard's parts and shares per dataset, where they differ from Union's own default
#: (msp 0.8 + mahalanobis_layers 0.2). MNIST: msp 0.95 + the recentred Lee et al. score 0.05,
#: chosen on validation digits as the largest centred share whose correlations between the
#: guard's abstention and the CNN's errors along translation and rotation all clear 0.91 (issue
#: #6's goal is 0.9; README "Recentring shrinks the trade", bench/results/guard_tradeoff_centred.json).
#: On FashionMNIST the same guard lets twice the MNIST digits through (README "The same trade on
#: FashionMNIST"), so it keeps Union's default.
GUARD_UNION = {"mnist": {"msp": 0.95, "mahalanobis_layers_centred": 0.05}}
#: what ABS may train on (RunConfig.abs_train_images)
ABS_TRAIN_IMAGES = ("train", "train+val")


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "mnist"
    # the guard's detector: `union` abstains when `msp` (the classifier's own doubt: mistakes,
    # shifted and rotated digits) or `mahalanobis_layers` (far OOD sets and attacks) would;
    # README, "The guard", has the measured table behind the choice
    detector: str = "union"
    accept: float = 0.95                   # in-distribution acceptance the threshold is set for
    classifier: ClassifierConfig = ClassifierConfig()
    vae: VAEConfig = VAEConfig()
    classifier_train: TrainConfig = TrainConfig(epochs=6, lr=3e-3, shift=2)
    vae_train: TrainConfig = TrainConfig(epochs=6, lr=2e-3, shift=0)
    #: the background model of the likelihood ratio (Ren et al. 2019): the same VAE trained on
    #: training images whose pixels are each replaced by uniform noise with this probability
    background: BackgroundConfig = BackgroundConfig()
    background_train: TrainConfig = TrainConfig(epochs=4, lr=2e-3, shift=0)
    #: analysis by synthesis (Schott et al. 2019): ten per-class VAEs (abstain.models.abs);
    #: 5 epochs, half the reference's, to shorten `abstain demo` (over its 10-minute budget
    #: all the same on 2026-12's machines, README "Results"); `--abs-epochs 10` is the
    #: reference's length (README: accuracy 97.72% at 10 epochs, fast mode, all test images)
    abs: ABSConfig = ABSConfig()
    abs_train: TrainConfig = TrainConfig(epochs=5, lr=3e-3, shift=1, batch_size=32)
    #: what ABS's ten VAEs train (and finetune) on: "train", the training split as every other
    #: model; or "train+val", the validation images too, as the reference trained on all 60,000
    #: MNIST images (`abstain fit --abs-with-val`). The `abs` detector's threshold and the guard
    #: are then calibrated on images ABS has seen, and its validation loss (early stopping,
    #: the weights kept) measures fit, not generalisation
    abs_train_images: str = "train"
    #: extra named instances of registered detectors with other hyperparameters,
    #: {instance name: {"detector": registry name, **params}}; every registered detector is
    #: always fitted with its defaults under its own name
    variants: dict = field(default_factory=lambda: dict(DEFAULT_VARIANTS))

    def __post_init__(self):
        if self.abs_train_images not in ABS_TRAIN_IMAGES:
            raise InputError(f"abs_train_images must be one of {', '.join(ABS_TRAIN_IMAGES)}, "
                             f"got {self.abs_train_images!r}")

    @classmethod
    def for_dataset(cls, dataset: str) -> "RunConfig":
        """The defaults for a dataset (what `abstain fit` and `abstain demo` use; a bare
        RunConfig() keeps the generic ones): FashionMNIST gets its own input normalisation and a
        longer classifier schedule with smaller shifts (6 epochs reach 90.9% test accuracy; see
        README); MNIST its own `union` guard (GUARD_UNION)."""
        if dataset == "fashion_mnist":
            config = cls(dataset=dataset, classifier=ClassifierConfig(mean=0.2860, std=0.3530),
                         classifier_train=TrainConfig(epochs=15, lr=3e-3, shift=1))
        else:
            config = cls(dataset=dataset)
        return config.with_union(GUARD_UNION[dataset]) if dataset in GUARD_UNION else config

    def with_union(self, spec: dict[str, float]) -> "RunConfig":
        """This config with the `union` detector made of other parts and shares, {part: share}
        (`abstain fit --union msp=0.999 mahalanobis_layers=0.001`); parts are detectors of the
        run other than combinations, shares positive."""
        instances = self.instances()
        if not spec:
            raise InputError("union: needs at least one part")
        for name, share in spec.items():
            if name not in instances or DETECTORS[instances[name][0]].input == "scores":
                known = sorted(n for n, (kind, _) in instances.items() if DETECTORS[kind].input != "scores")
                raise InputError(f"union: {name!r} is not a detector it can combine; known: {', '.join(known)}")
            if not 0 < float(share) < float("inf"):
                raise InputError(f"union: the share of {name} must be a positive number, got {share}")
        return replace(self, variants={**self.variants, "union": {
            "detector": "union", "parts": list(spec), "shares": [float(s) for s in spec.values()]}})

    def instances(self) -> dict[str, tuple[str, dict]]:
        """{instance name: (registry name, params)} for every detector the run fits."""
        out = {name: (name, {}) for name in DETECTORS}
        for name, spec in self.variants.items():
            spec = dict(spec)
            det = spec.pop("detector", None)
            if det not in DETECTORS:
                raise InputError(f"variant {name!r}: unknown detector {det!r}")
            out[name] = (det, spec)
        return out

    def models_needed(self) -> list[str]:
        """The run's models (keys of MODELS) its detectors need, classifier and VAE always."""
        need = {"classifier", "vae"} | {m for kind, _ in self.instances().values()
                                        for m in DETECTORS[kind].model_params}
        return [m for m in MODELS if m in need]

    def to_dict(self) -> dict:
        return {f.name: config_to_dict(getattr(self, f.name)) if is_dataclass(getattr(self, f.name))
                else getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        """Inverse of to_dict; fields missing from `d` (older runs) take their defaults."""
        default, kw = cls(), {}
        for f in fields(cls):
            if f.name in d:
                value = getattr(default, f.name)
                kw[f.name] = config_from_dict(type(value), d[f.name]) if is_dataclass(value) else d[f.name]
        return cls(**kw)


@dataclass(frozen=True)
class ModelSpec:
    """How a run trains, keys and stores one of its models."""

    file: str
    module: type
    config: Callable[[RunConfig], object]                  # the model's config
    train_config: Callable[[RunConfig], TrainConfig]
    train: Callable[[torch.nn.Module, Dataset, RunConfig, bool], dict]
    meta: Callable[[RunConfig, Dataset], dict] = lambda cfg, data: {}    # stored, not compared
    key: Callable[[RunConfig], dict] = lambda cfg: {}                    # compared on reuse


MODELS: dict[str, ModelSpec] = {
    "classifier": ModelSpec(
        "classifier.safetensors", CNN, lambda c: c.classifier, lambda c: c.classifier_train,
        lambda m, d, c, p: train_classifier(m, d.x_train, d.y_train, d.x_val, d.y_val, c.classifier_train, p),
        meta=lambda c, d: {"normalisation": {"mean": c.classifier.mean, "std": c.classifier.std},
                           "class_names": d.class_names}),
    "vae": ModelSpec(
        "vae.safetensors", ConvVAE, lambda c: c.vae, lambda c: c.vae_train,
        lambda m, d, c, p: train_vae(m, d.x_train, d.x_val, c.vae_train, p),
        meta=lambda c, d: {"likelihood": c.vae.likelihood}),
    "vae_background": ModelSpec(
        "vae_background.safetensors", ConvVAE, lambda c: c.vae, lambda c: c.background_train,
        lambda m, d, c, p: train_vae(m, d.x_train, d.x_val, c.background_train, p,
                                     mutation=c.background.mutation, what="background VAE"),
        meta=lambda c, d: {"likelihood": c.vae.likelihood,
                           "trained_on": "training images with pixels replaced by uniform noise"},
        key=lambda c: {"background": config_to_dict(c.background)}),
    "abs": ModelSpec(
        "abs.safetensors", ABS, lambda c: c.abs, lambda c: c.abs_train,
        # abs_training_images already cut the training split to max_train (before adding the
        # validation images, which train_abs's own cut would drop)
        lambda m, d, c, p: train_abs(m, *abs_training_images(d, c), d.x_val, d.y_val,
                                     replace(c.abs_train, max_train=None), p),
        meta=lambda c, d: {"class_names": d.class_names,
                           "model": "ten per-class VAEs, analysis by synthesis (abstain.models.abs)"},
        # as bench/abs_speed.py's cached models say it: absent for the training split alone
        key=lambda c: {"train_images": c.abs_train_images} if c.abs_train_images != "train" else {}),
}


def abs_training_images(data: Dataset, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels ABS trains on: the first `abs_train.max_train` training images
    (all without it), then, with `abs_train_images` "train+val", every validation image."""
    n = config.abs_train.max_train
    x, y = data.x_train[:n], data.y_train[:n]
    if config.abs_train_images == "train+val":
        return np.concatenate([x, data.x_val]), np.concatenate([y, data.y_val])
    return x, y


@dataclass
class Run:
    path: Path
    config: RunConfig
    models: dict[str, torch.nn.Module]      # "classifier", "vae", and whatever the detectors need
    guard: Guard
    info: dict = field(default_factory=dict)
    code: str = ""                          # code_fingerprint() of the code that fitted it

    @property
    def classifier(self) -> CNN:
        return self.models["classifier"]

    @property
    def vae(self) -> ConvVAE:
        return self.models["vae"]

    @property
    def abs_model(self) -> ABS | None:
        """The run's analysis-by-synthesis model, or None when the run has none."""
        return self.models.get("abs")

    def require_abs(self, instead: str = "") -> ABS:
        """The ABS model, or an InputError naming what to do instead (default: refit)."""
        if self.abs_model is None:
            raise InputError(f"{self.path}: this run has no ABS model; "
                             + (instead or f"refit it with: abstain fit --run {self.path} --force"))
        return self.abs_model

    @property
    def dataset(self) -> Dataset:
        return load_dataset(self.config.dataset)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the saved guard and checkpoints and of the code that scores with them
        (:func:`code_fingerprint`): keys every cache of this run's scores and attack images."""
        h = hashlib.sha256(code_fingerprint().encode())
        files = ["guard.json", "detectors.safetensors", *(MODELS[m].file for m in sorted(self.models))]
        for f in files:
            h.update((self.path / f).read_bytes())
        return h.hexdigest()[:16]


@functools.cache
def code_fingerprint() -> str:
    """Hash of this installation's abstain source files: caches written by other code are stale
    (the version number alone does not change between commits)."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(f.relative_to(root).as_posix().encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:16]


#: what a run folder may hold besides run.json (a run interrupted before its run.json was
#: written): checkpoints, their metadata, results, reports, score caches, temporary files
_RUN_SUFFIXES = {".safetensors", ".json", ".html", ".png", ".npz", ".tmp"}
_RUN_FOLDERS = {"scores", "probes"}


def _looks_like_run(folder: Path) -> bool:
    """Whether `folder` is a run's (run.json) or holds only what a run writes, so that --force
    may delete it: `abstain fit --run ~ --force` must not remove a home folder."""
    try:
        if "abstain_version" in json.loads((folder / "run.json").read_text()):
            return True
    except (OSError, ValueError, TypeError):
        pass
    return all((p.is_dir() and p.name in _RUN_FOLDERS) or (p.is_file() and p.suffix in _RUN_SUFFIXES)
               for p in folder.iterdir())


def fit_run(folder: str | Path, config: RunConfig = RunConfig(), progress: bool = False,
            force: bool = False, workers: int | None = 1) -> Run:
    """Train (or reuse) the run's models, fit every detector, calibrate the guard. Models to
    train go to `workers` processes side by side (None: as many as the cores allow,
    :func:`abstain.train_pool.plan`; the CLI's default); 1, the default here, trains them in
    this process one after another (side by side needs the caller's script importable: an
    ``if __name__ == "__main__":`` guard)."""
    folder = Path(folder)
    if config.detector not in config.instances():
        raise InputError(f"unknown detector {config.detector!r}; known: {', '.join(sorted(config.instances()))}")
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder} is a file, not a run folder; pass a new or existing run folder")
    previous = None
    if force and folder.exists():
        if not _looks_like_run(folder):
            raise InputError(f"refusing to delete {folder} for --force: it holds files an abstain run does not "
                             "write (no run.json); pass a new folder or a run's folder")
        shutil.rmtree(folder)
    elif (folder / "run.json").exists():
        try:
            previous = load_run(folder)
            if previous.config == config and set(previous.guard.detectors) == set(config.instances()):
                log.info("reusing the fitted run in %s", folder)
                return previous
        except RunError as exc:
            log.warning("refitting %s: %s", folder, exc)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the run folder {folder}: {exc.strerror or exc}") from exc
    data = load_dataset(config.dataset)
    models, summary = train_models(folder, config, data, progress, workers)
    guard = fit_guard(models, data, config, reusable_detectors(previous, config, models))
    guard.save(folder)
    summary["test_accuracy"] = accuracy(models["classifier"], data.x_test, data.y_test)
    write_json(folder / "run.json", {"abstain_version": __version__, "code": code_fingerprint(),
                                     "config": config.to_dict(), "models": list(models), "summary": summary})
    return Run(folder, config, models, guard, summary, code_fingerprint())


def train_models(folder: Path, config: RunConfig, data: Dataset, progress: bool = False,
                 workers: int | None = 1) -> tuple[dict[str, torch.nn.Module], dict]:
    """The run's models (:meth:`RunConfig.models_needed`), each loaded from its checkpoint in
    `folder` when trained with the same configs, else trained and saved; those to train go to
    `workers` processes side by side (:func:`abstain.train_pool.plan`). Returns the models and
    their training summaries, plus, when any was trained, "training": which, how (workers,
    threads each) and the wall seconds it took."""
    models, summary = {}, {}
    start = time.perf_counter()
    stale = [name for name in config.models_needed() if _stale(folder, name, config)]
    n_workers, threads = train_pool.plan(len(stale), workers)
    if n_workers > 1:
        train_pool.train_side_by_side(folder, stale, config, progress, n_workers, threads)
    for name in config.models_needed():     # loads what the workers wrote; trains the rest here
        models[name], summary[name] = _checkpoint(folder, name, config, data, progress)
    if stale:
        summary["training"] = {"models": stale, "workers": n_workers,
                               "threads": threads if n_workers > 1 else torch.get_num_threads(),
                               "seconds": round(time.perf_counter() - start, 1)}
    return models, summary


def reusable_detectors(previous: Run | None, config: RunConfig, models: dict[str, torch.nn.Module]) -> dict:
    """The fitted detectors of `previous` (the run this refit replaces) that a refit with `config`
    and `models` would fit again to the same state: same dataset, same code, the same kind and
    parameters, and the same weights in the classifier (every view comes from it) and in the
    models the detector holds. Changing only the `union` (`abstain fit --union`) then refits
    nothing but the guard; retraining ABS refits only `abs`. Combinations are left out
    (calibration fits them)."""
    if previous is None or previous.config.dataset != config.dataset or previous.code != code_fingerprint():
        return {}

    def same(name: str) -> bool:
        if name not in previous.models or name not in models:
            return False
        old, new = previous.models[name].state_dict(), models[name].state_dict()
        return old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in new)
    unchanged = {name for name in models if same(name)}
    if "classifier" not in unchanged:
        return {}
    before, out = previous.config.instances(), {}
    for name, spec in config.instances().items():
        det = previous.guard.detectors.get(name)
        if det is not None and det.input != "scores" and before.get(name) == spec \
                and set(det.model_params) <= unchanged:
            for m in det.model_params:             # bind the detector to this run's model objects
                setattr(det, m, models[m])
            out[name] = det
    return out


def _checkpoint_args(folder: Path, name: str, config: RunConfig) -> dict:
    """What identifies model `name`'s checkpoint in `folder`: its path, module, model config,
    training config and the plain values compared on reuse."""
    spec = MODELS[name]
    return {"path": folder / spec.file, "module_cls": spec.module, "model_cfg": spec.config(config),
            "configs": {"train": spec.train_config(config)}, "want": {"dataset": config.dataset, **spec.key(config)}}


def _stale(folder: Path, name: str, config: RunConfig) -> bool:
    """Would fitting `config` into `folder` train model `name` (no checkpoint with its configs)?"""
    a = _checkpoint_args(folder, name, config)
    return not matches(a["path"], a["want"], {"config": a["model_cfg"], **a["configs"]})


def _checkpoint(folder: Path, name: str, config: RunConfig, data: Dataset, progress: bool):
    """Reuse the model checkpoint in `folder` if it was trained with the same configs; else train
    and save it. Returns (model, training summary)."""
    spec = MODELS[name]
    return load_or_train(**_checkpoint_args(folder, name, config), meta=spec.meta(config, data),
                         train=lambda m: spec.train(m, data, config, progress))


def _fit_split(data: Dataset, split: str, config: RunConfig) -> tuple[np.ndarray, np.ndarray]:
    """The images and labels detectors fit on: the training split cut to the run's `max_train`
    (the first N, the images its classifier was trained on); validation always whole."""
    x, y = data.split(split)
    n = config.classifier_train.max_train if split == "train" else None
    return (x[:n], y[:n]) if n else (x, y)


def fit_guard(models: dict[str, torch.nn.Module], data: Dataset, config: RunConfig,
              fitted: dict | None = None) -> Guard:
    """Fit every detector instance on its split's view (those in `fitted`, already fitted, are
    taken as they are); calibrate the guard on validation."""
    classifier = models["classifier"]
    fitted = fitted or {}
    instances = config.instances()
    splits = {DETECTORS[kind].fit_split for name, (kind, _) in instances.items()
              if name not in fitted and DETECTORS[kind].input != "scores"} | {"val"}
    fit_data = {split: _fit_split(data, split, config) for split in sorted(splits)}
    views = {split: compute_views(classifier, x) for split, (x, _) in fit_data.items()}
    detectors = {}
    for name, (kind, params) in instances.items():
        if name in fitted:
            detectors[name] = fitted[name]
            continue
        cls = DETECTORS[kind]
        det = make_detector(kind, **params, **{m: models[m] for m in cls.model_params})
        split = cls.fit_split
        if cls.input != "scores":                 # combinations: fitted by guard.calibrate, on their parts
            try:
                det.fit(views[split][cls.input], fit_data[split][1])
            except InputError as exc:
                n = len(fit_data[split][1])
                if split == "train" and n < len(data.split(split)[1]):
                    raise InputError(f"{exc} (fitting on the first {n} training images: raise --max-train)") from exc
                raise
        detectors[name] = det
    guard = Guard(classifier, detectors, config.detector, config.accept, data.class_names)
    return guard.calibrate(data.x_val, views["val"])


def load_run(folder: str | Path) -> Run:
    """Load a fitted run; every inconsistency is a RunError saying how to fix it."""
    folder = Path(folder)
    meta_path = folder / "run.json"
    if not meta_path.exists():
        raise RunError(f"{folder}: not a fitted run (no run.json); create it with: abstain fit --run {folder}")
    try:
        meta = json.loads(meta_path.read_text())
        config = RunConfig.from_dict(meta["config"])
        names = meta.get("models", ["classifier", "vae"])
        specs = {n: MODELS[n] for n in names}
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{meta_path}: unreadable ({exc}); refit with: abstain fit --run {folder} --force") from exc
    if meta.get("abstain_version") != __version__:
        raise RunError(f"{folder}: made by abstain {meta.get('abstain_version')}, this is {__version__}; "
                       f"refit with: abstain fit --run {folder} --force")
    models = {n: load_module(folder / s.file, s.module, type(s.config(config)))[0].eval()
              for n, s in specs.items()}
    guard = Guard.load(folder, models["classifier"], models)
    return Run(folder, config, models, guard, meta.get("summary", {}), meta.get("code", ""))
