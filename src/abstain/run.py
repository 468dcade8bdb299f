"""A run: one dataset's classifier, VAE, fitted detectors and calibrated guard, in one folder.

Layout of DIR::

    run.json                  RunConfig, dataset, abstain version, training summaries
    classifier.safetensors    (+ .json)   weights with metadata
    vae.safetensors           (+ .json)
    vae_background.safetensors, ...   the other models its detectors need (abstain.run_models.MODELS)
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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__, train_pool
from .atomic import write_json
from .checkpoint import load_module
from .data.datasets import Dataset, load_dataset
from .detectors import DETECTORS, make_detector
from .errors import InputError, RunError
from .guard import Guard
from .models.abs import ABS
from .models.classifier import CNN
from .models.vae import ConvVAE
# the run's configuration and models live in their own modules; imported here for the library's
# callers (``from abstain.run import RunConfig, fit_run``)
from .run_config import ABS_TRAIN_IMAGES, DEFAULT_VARIANTS, GUARD_UNION, RunConfig  # noqa: F401
from .run_models import MODELS, ModelSpec, abs_training_images, model_checkpoint, stale  # noqa: F401
from .train import accuracy
from .views import compute_views

log = logging.getLogger(__name__)


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
    to_train = [name for name in config.models_needed() if stale(folder, name, config)]
    n_workers, threads = train_pool.plan(len(to_train), workers)
    if n_workers > 1:
        train_pool.train_side_by_side(folder, to_train, config, progress, n_workers, threads)
    for name in config.models_needed():     # loads what the workers wrote; trains the rest here
        models[name], summary[name] = model_checkpoint(folder, name, config, data, progress)
    if to_train:
        summary["training"] = {"models": to_train, "workers": n_workers,
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
