import gzip

import numpy as np
import pytest

from abstain.data.idx import parse_idx, read_idx, write_idx
from abstain.errors import DataError


def test_roundtrip_plain_and_gzip(tmp_path, rng):
    arr = rng.integers(0, 256, (7, 28, 28), dtype=np.uint8)
    write_idx(tmp_path / "a", arr)
    assert np.array_equal(read_idx(tmp_path / "a"), arr)
    (tmp_path / "a.gz").write_bytes(gzip.compress((tmp_path / "a").read_bytes()))
    assert np.array_equal(read_idx(tmp_path / "a.gz"), arr)


def test_labels_1d(tmp_path):
    write_idx(tmp_path / "l", np.arange(10, dtype=np.uint8))
    out = read_idx(tmp_path / "l")
    assert out.shape == (10,) and out[9] == 9


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:-5], "truncated"),
    (lambda b: b + b"xx", "trailing"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:2], "too short"),
])
def test_corrupt_files_are_named(tmp_path, mutate, message):
    write_idx(tmp_path / "a", np.zeros((3, 4, 4), np.uint8))
    raw = mutate((tmp_path / "a").read_bytes())
    with pytest.raises(DataError, match=message):
        parse_idx(raw, "x")


def test_real_fashion_idx_header():
    """The Debian FashionMNIST file parses to 60k images of 28 x 28."""
    arr = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    assert arr.shape == (10_000,) and set(np.unique(arr)) == set(range(10))
