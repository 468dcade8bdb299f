import hashlib

import torch

from abstain.checkpoint import identity, save_module, weights_sha256
from abstain.models.classifier import CNN, ClassifierConfig


def test_the_weights_digest_ignores_the_metadata_and_sees_every_weight(tmp_path):
    torch.manual_seed(0)
    model = CNN(ClassifierConfig(hidden=8))
    a, b, c = (tmp_path / f"{n}.safetensors" for n in "abc")
    save_module(a, model, {"training": {"seconds": 1.0}})
    save_module(b, model, {"training": {"seconds": 2.0}})
    # same weights, different metadata: the files' hashes differ, the weights' do not
    assert hashlib.sha256(a.read_bytes()).hexdigest() != hashlib.sha256(b.read_bytes()).hexdigest()
    assert weights_sha256(a) == weights_sha256(b)
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] += 1e-6       # one weight moved by a hair
    save_module(c, model, {"training": {"seconds": 1.0}})
    assert weights_sha256(c) != weights_sha256(a)
    ida, idb = identity(a), identity(b)
    assert ida["weights_sha256"] == idb["weights_sha256"] and ida["sha256"] != idb["sha256"]
    assert ida["sha256"] == hashlib.sha256(a.read_bytes()).hexdigest() and "training" not in ida


def test_results_written_before_the_weights_digest_still_print():
    from abstain.robustness.summary import checkpoint_label
    old = {"file": "abs.safetensors", "sha256": "ab" * 32}
    assert checkpoint_label(old) == "abs.safetensors sha256 abababababab"
    assert checkpoint_label({**old, "weights_sha256": "cd" * 32}).endswith(" weights cdcdcdcdcdcd")
