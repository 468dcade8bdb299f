"""Safetensors checkpoints that carry their own metadata, plus a JSON sidecar of the same."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import __version__
from .atomic import atomic_path, write_json
from .errors import RunError

log = logging.getLogger(__name__)


def config_to_dict(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


def config_from_dict(cls, d: dict):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(d) - set(fields)
    if unknown:
        raise RunError(f"{cls.__name__}: unknown config fields {sorted(unknown)} (another version?)")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


def save_module(path: str | Path, module: torch.nn.Module, meta: dict) -> None:
    """Write `module`'s weights with `meta` (JSON-able) in the header and in `path`.json."""
    path = Path(path)
    meta = {"abstain_version": __version__, "config": config_to_dict(module.config), **meta}
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={"abstain": json.dumps(meta)})
    write_json(path.with_suffix(".json"), meta)


def read_meta(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise RunError(f"{path}: checkpoint missing")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
        return json.loads(header["abstain"])
    except (SafetensorError, OSError, KeyError, ValueError) as exc:
        raise RunError(f"{path}: not an abstain checkpoint ({exc})") from exc


def state_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 of named tensors (each name, dtype, shape and bytes, in name order): equal for equal
    weights, wherever they come from (a module's state_dict, a checkpoint file)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def weights_sha256(path: str | Path) -> str:
    """`state_sha256` of a checkpoint's tensors, not of its metadata: two trainings that end in
    the same weights get the same digest although their files differ (the metadata holds, e.g.,
    the training seconds)."""
    return state_sha256(load_file(str(path)))


def identity(path: str | Path) -> dict:
    """What names the checkpoint at `path` for a result computed with it: its file name, the
    sha256 of its bytes, the sha256 of its weights alone (`weights_sha256`), and its metadata
    less the training history (configs, what it trained on)."""
    path = Path(path)
    meta = read_meta(path)
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return {"file": path.name, "sha256": digest.hexdigest(), "weights_sha256": weights_sha256(path),
            **{k: v for k, v in meta.items() if k != "training"}}


def load_module(path: str | Path, module_cls, config_cls) -> tuple[torch.nn.Module, dict]:
    meta = read_meta(path)
    if meta.get("abstain_version") != __version__:
        raise RunError(f"{path}: written by abstain {meta.get('abstain_version')}, this is {__version__}; "
                       "refit the run (abstain fit ... --force)")
    module = module_cls(config_from_dict(config_cls, meta["config"]))
    try:
        module.load_state_dict(load_file(str(path)))
    except (SafetensorError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())
        raise RunError(f"{path}: weights do not match the model ({detail}); written by an earlier "
                       "abstain? retrain it (a run: abstain fit --run DIR --force)") from exc
    module.eval()
    return module, meta


def matches(path: Path, want: dict, configs: dict) -> bool:
    """Was the checkpoint at `path` made by this version with these settings? `want` holds plain
    metadata values; `configs` ({meta key: config}) are compared as parsed configs, so a field
    added later with a default matches a checkpoint written before it existed."""
    if not path.exists():
        return False
    try:
        old = read_meta(path)
        same = all(config_from_dict(type(c), old.get(k, {})) == c for k, c in configs.items())
    except (RunError, TypeError):
        return False
    return same and old.get("abstain_version") == __version__ and all(old.get(k) == v for k, v in want.items())


def load_or_train(path: Path, module_cls, model_cfg, configs: dict, train, want: dict | None = None,
                  meta: dict | None = None) -> tuple[torch.nn.Module, dict]:
    """The module at `path` if this version saved it with `model_cfg`, `configs` ({meta key:
    config}, at least "train") and the plain values `want`; else a new `module_cls(model_cfg)`,
    seeded with the training config's seed, trained by `train(model)` (which returns its
    summary) and saved with all of these plus `meta`. Returns (model in eval mode, summary)."""
    want = want or {}
    if matches(path, want, {"config": model_cfg, **configs}):
        try:
            model, old = load_module(path, module_cls, type(model_cfg))
            return model.eval(), old["training"]
        except RunError as exc:
            log.warning("retraining %s: %s", path, exc)
    torch.manual_seed(configs["train"].seed)      # initial weights depend on the seed only
    model = module_cls(model_cfg)
    result = train(model)
    save_module(path, model, {**want, "config": config_to_dict(model_cfg),
                              **{k: config_to_dict(c) for k, c in configs.items()},
                              "training": result, "input": [1, 28, 28], **(meta or {})})
    return model.eval(), result
