"""Safetensors checkpoints that carry their own metadata, plus a JSON sidecar of the same."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from . import __version__
from .atomic import atomic_path, write_json
from .errors import RunError


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


def load_module(path: str | Path, module_cls, config_cls) -> tuple[torch.nn.Module, dict]:
    meta = read_meta(path)
    if meta.get("abstain_version") != __version__:
        raise RunError(f"{path}: written by abstain {meta.get('abstain_version')}, this is {__version__}; "
                       "refit the run (abstain fit ... --force)")
    module = module_cls(config_from_dict(config_cls, meta["config"]))
    try:
        module.load_state_dict(load_file(str(path)))
    except (SafetensorError, RuntimeError) as exc:
        raise RunError(f"{path}: weights do not match the model ({exc})") from exc
    module.eval()
    return module, meta
