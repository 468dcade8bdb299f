"""Load MNIST and FashionMNIST as uint8 arrays with the classic 50k / 10k / 10k split."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np

from ..errors import DataError, InputError
from . import sources

log = logging.getLogger(__name__)

CLASS_NAMES = {
    "mnist": [str(i) for i in range(10)],
    "fashion_mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
}
EXPECTED_SIZES = {"train": 50_000, "val": 10_000, "test": 10_000}


@dataclass(frozen=True)
class Dataset:
    """Images are uint8 (N, 28, 28) with ink bright on black; labels int64 (N,)."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def class_names(self) -> list[str]:
        return CLASS_NAMES[self.name]

    def split(self, which: str) -> tuple[np.ndarray, np.ndarray]:
        if which not in EXPECTED_SIZES:
            raise InputError(f"unknown split {which!r}; use train, val or test")
        return getattr(self, f"x_{which}"), getattr(self, f"y_{which}")


def _validate(data: dict[str, np.ndarray], where: str) -> None:
    for split, n in EXPECTED_SIZES.items():
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        if x.shape != (n, 28, 28) or x.dtype != np.uint8 or y.shape != (n,):
            raise DataError(f"{where}: {split} split has shape {x.shape} / {y.shape}, dtype {x.dtype}; "
                            f"expected ({n}, 28, 28) uint8")
        if y.min() < 0 or y.max() > 9:
            raise DataError(f"{where}: labels outside 0..9")


@functools.lru_cache(maxsize=4)
def load_dataset(name: str) -> Dataset:
    """Find `name` ('mnist' or 'fashion_mnist') in the first source that works; cache it."""
    if name not in CLASS_NAMES:
        raise InputError(f"unknown dataset {name!r}; known: {', '.join(CLASS_NAMES)}")
    tried = []
    for desc, loader in sources.candidate_sources(name):
        try:
            data = loader()
            data = {k: np.asarray(v) for k, v in data.items()}
            data = {k: (v.astype(np.int64) if k.startswith("y") else v) for k, v in data.items()}
            _validate(data, desc)
        except DataError as exc:
            tried.append(f"{desc}: {exc}")
            log.debug("dataset %s not at %s: %s", name, desc, exc)
            continue
        if not desc.startswith("cache"):
            path = sources.write_cache(name, data)
            log.info("cached %s from %s into %s", name, desc, path)
        return Dataset(name=name, source=desc, **data)
    raise DataError(f"{name} not found. Tried: " + " | ".join(tried)
                    + f". Fix: {sources.FIX_COMMANDS[name]}")
