"""A run: one dataset's classifier, VAE, fitted detectors and calibrated guard, in one folder.

Layout of DIR::

    run.json                  RunConfig, dataset, abstain version, training summaries
    classifier.safetensors    (+ .json)   weights with metadata
    vae.safetensors           (+ .json)
    detectors.safetensors     fitted detector fields, guard.json: detector specs + threshold
    scores/                   cached per-set scores (see abstain.evaluate)
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from . import __version__
from .atomic import write_json
from .checkpoint import config_from_dict, config_to_dict, load_module, read_meta, save_module
from .data.datasets import Dataset, load_dataset
from .detectors import DETECTORS, make_detector
from .errors import InputError, RunError
from .guard import Guard
from .models.classifier import CNN, ClassifierConfig
from .models.vae import ConvVAE, VAEConfig
from .train import TrainConfig, accuracy, train_classifier, train_vae
from .views import compute_views

log = logging.getLogger(__name__)


# more instances can be added per run, e.g. Lee et al.'s input pre-processing:
# {"mahalanobis_pre": {"detector": "mahalanobis_layers", "eps": 0.002}} (measured: no change here)
DEFAULT_VARIANTS = {"gmm_k10": {"detector": "gmm", "n_components": 10}}


@dataclass(frozen=True)
class RunConfig:
    dataset: str = "mnist"
    # the guard's detector: chosen from the measured table (README): it ties the VAE gate on far
    # OOD sets and attacks and beats it on mistakes, MNIST-ified letters and rotations
    detector: str = "mahalanobis_layers"
    accept: float = 0.95                   # in-distribution acceptance the threshold is set for
    classifier: ClassifierConfig = ClassifierConfig()
    vae: VAEConfig = VAEConfig()
    classifier_train: TrainConfig = TrainConfig(epochs=6, lr=3e-3, shift=2)
    vae_train: TrainConfig = TrainConfig(epochs=6, lr=2e-3, shift=0)
    #: extra named instances of registered detectors with other hyperparameters,
    #: {instance name: {"detector": registry name, **params}}; every registered detector is
    #: always fitted with its defaults under its own name
    variants: dict = field(default_factory=lambda: dict(DEFAULT_VARIANTS))

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

    def to_dict(self) -> dict:
        return {"dataset": self.dataset, "detector": self.detector, "accept": self.accept,
                "classifier": config_to_dict(self.classifier), "vae": config_to_dict(self.vae),
                "classifier_train": config_to_dict(self.classifier_train),
                "vae_train": config_to_dict(self.vae_train), "variants": self.variants}

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        return cls(dataset=d["dataset"], detector=d["detector"], accept=d["accept"],
                   classifier=config_from_dict(ClassifierConfig, d["classifier"]),
                   vae=config_from_dict(VAEConfig, d["vae"]),
                   classifier_train=config_from_dict(TrainConfig, d["classifier_train"]),
                   vae_train=config_from_dict(TrainConfig, d["vae_train"]),
                   variants=d.get("variants", {}))


@dataclass
class Run:
    path: Path
    config: RunConfig
    classifier: CNN
    vae: ConvVAE
    guard: Guard
    info: dict = field(default_factory=dict)

    @property
    def dataset(self) -> Dataset:
        return load_dataset(self.config.dataset)

    @functools.cached_property
    def fingerprint(self) -> str:
        """Hash of the saved guard and checkpoints: keys every cache of this run's scores."""
        h = hashlib.sha256()
        for f in ("guard.json", "detectors.safetensors", "classifier.safetensors", "vae.safetensors"):
            h.update((self.path / f).read_bytes())
        return h.hexdigest()[:16]


def fit_run(folder: str | Path, config: RunConfig = RunConfig(), progress: bool = False,
            force: bool = False) -> Run:
    """Train (or reuse) the classifier and VAE, fit every detector, calibrate the guard."""
    folder = Path(folder)
    if config.detector not in config.instances():
        raise InputError(f"unknown detector {config.detector!r}; known: {', '.join(sorted(config.instances()))}")
    if force and folder.exists():
        shutil.rmtree(folder)
    elif (folder / "run.json").exists():
        try:
            run = load_run(folder)
            if run.config == config and set(run.guard.detectors) == set(config.instances()):
                log.info("reusing the fitted run in %s", folder)
                return run
        except RunError as exc:
            log.warning("refitting %s: %s", folder, exc)
    folder.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    data = load_dataset(config.dataset)
    summary = {}
    classifier, summary["classifier"] = _classifier(folder, config, data, progress)
    vae, summary["vae"] = _vae(folder, config, data, progress)
    guard = fit_guard(classifier, vae, data, config)
    guard.save(folder)
    summary["test_accuracy"] = accuracy(classifier, data.x_test, data.y_test)
    write_json(folder / "run.json", {"abstain_version": __version__, "config": config.to_dict(),
                                     "summary": summary})
    return Run(folder, config, classifier, vae, guard, summary)


def _matches(path: Path, cfg_meta: dict) -> bool:
    if not path.exists():
        return False
    try:
        old = read_meta(path)
    except RunError:
        return False
    return old.get("abstain_version") == __version__ and all(old.get(k) == v for k, v in cfg_meta.items())


def _checkpoint(path: Path, module_cls, config_cls, model_cfg, train_cfg, dataset: str, train, extra: dict):
    """Reuse the checkpoint at `path` if it was trained with the same configs; else train and save."""
    want = {"config": config_to_dict(model_cfg), "train": config_to_dict(train_cfg), "dataset": dataset}
    if _matches(path, want):
        model, meta = load_module(path, module_cls, config_cls)
        return model, meta["training"]
    torch.manual_seed(train_cfg.seed)      # initial weights depend on the seed only
    model = module_cls(model_cfg)
    result = train(model)
    save_module(path, model, {**want, "training": result, "input": [1, 28, 28], **extra})
    return model, result


def _classifier(folder: Path, config: RunConfig, data: Dataset, progress: bool):
    c = config.classifier
    return _checkpoint(folder / "classifier.safetensors", CNN, ClassifierConfig, c, config.classifier_train,
                       config.dataset, lambda m: train_classifier(m, data.x_train, data.y_train, data.x_val,
                                                                  data.y_val, config.classifier_train, progress),
                       {"normalisation": {"mean": c.mean, "std": c.std}, "class_names": data.class_names})


def _vae(folder: Path, config: RunConfig, data: Dataset, progress: bool):
    return _checkpoint(folder / "vae.safetensors", ConvVAE, VAEConfig, config.vae, config.vae_train,
                       config.dataset, lambda m: train_vae(m, data.x_train, data.x_val, config.vae_train, progress),
                       {"likelihood": "bernoulli on grey levels in [0, 1]"})


def fit_guard(classifier: CNN, vae: ConvVAE, data: Dataset, config: RunConfig) -> Guard:
    """Fit every registered detector on its split's view; calibrate the guard on validation."""
    models = {"vae": vae, "classifier": classifier}
    views = {split: compute_views(classifier, data.split(split)[0]) for split in ("train", "val")}
    detectors = {}
    for name, (kind, params) in config.instances().items():
        cls = DETECTORS[kind]
        det = make_detector(kind, **params, **{m: models[m] for m in cls.model_params})
        split = cls.fit_split
        det.fit(views[split][cls.input], data.split(split)[1])
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
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{meta_path}: unreadable ({exc}); refit with: abstain fit --run {folder} --force") from exc
    if meta.get("abstain_version") != __version__:
        raise RunError(f"{folder}: made by abstain {meta.get('abstain_version')}, this is {__version__}; "
                       f"refit with: abstain fit --run {folder} --force")
    classifier, _ = load_module(folder / "classifier.safetensors", CNN, ClassifierConfig)
    vae, _ = load_module(folder / "vae.safetensors", ConvVAE, VAEConfig)
    guard = Guard.load(folder, classifier, {"vae": vae, "classifier": classifier})
    return Run(folder, config, classifier, vae, guard, meta.get("summary", {}))
