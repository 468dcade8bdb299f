"""ABS class scales (the reference's discriminative finetuning): what the logits are made of,
fitted when asked for, saved with the weights; checkpoints from before them load with ones."""
import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from abstain.checkpoint import load_module, save_module
from abstain.cli import main
from abstain.models.abs import ABS, ABSConfig
from abstain.models.abs_modes import Inference
from abstain.tensors import to_tensor
from abstain.train import TrainConfig
from abstain.train_abs import fit_class_scales, train_abs

SMALL = Inference(prototypes=300, steps=5, lr=0.05)


@pytest.fixture(scope="module")
def model(tiny_run):
    return tiny_run.models["abs"].eval()


@pytest.fixture(scope="module")
def fitted(model, mnist):
    m = copy.deepcopy(model)
    info = fit_class_scales(m, mnist.x_val[:600], mnist.y_val[:600], mode=SMALL)
    return m, info


def test_runs_fit_no_scales_by_default(model):
    assert model.config.scale_fit_images == 0
    assert torch.equal(model.class_scale, torch.ones(10))


def test_fitted_scales_lower_the_cross_entropy_on_held_out_digits(fitted, mnist):
    m, info = fitted
    a = m.class_scale.double()
    assert info["images"] == 600 and np.allclose(info["scales"], a.numpy(), atol=1e-4)
    assert float(a.log().mean()) == pytest.approx(0.0, abs=1e-5)          # geometric mean 1
    assert float(a.max() - a.min()) > 0.01 and 0.5 < float(a.min()) and float(a.max()) < 2.0
    x, y = mnist.x_val[600:1200], mnist.y_val[600:1200]                   # not the fitted ones
    with torch.no_grad():
        losses = m.with_mode(SMALL).class_losses(to_tensor(x)).double()
    target = torch.from_numpy(y).long()

    def ce(scales):
        return float(F.cross_entropy(-m.config.confidence_scale * scales * losses, target))
    assert ce(a) < ce(torch.ones(10, dtype=torch.float64)) - 1e-3


def test_logits_are_minus_the_scaled_losses_with_the_scaled_gradient(fitted, mnist):
    m, _ = fitted
    x = to_tensor(mnist.x_test[:6]).requires_grad_(True)
    view = m.with_mode(SMALL)
    logits = view(x)
    losses = view.class_losses(x.detach())
    torch.testing.assert_close(logits.detach(), -m.class_scale * losses, rtol=1e-5, atol=1e-7)
    grad = torch.autograd.grad(-logits[:, 2].sum(), x)[0]
    _, rec = m.solve(x.detach().flatten(1), SMALL)
    expected = 2.0 * m.class_scale[2] * (x.detach().flatten(1) - rec[:, 2]) / 784
    torch.testing.assert_close(grad.flatten(1), expected, rtol=1e-5, atol=1e-8)


def test_training_fits_them_when_the_config_asks(mnist):
    m = ABS(ABSConfig(scale_fit_images=300))
    result = train_abs(m, mnist.x_train[:1000], mnist.y_train[:1000], mnist.x_val[:300], mnist.y_val[:300],
                       TrainConfig(epochs=1, batch_size=32, lr=3e-3))
    info = result["class_scales"]
    assert info["images"] == 300 and info["mode"] == "fast"
    assert np.allclose(info["scales"], m.class_scale.numpy(), atol=1e-4)
    assert not torch.equal(m.class_scale, torch.ones(10))


def test_scales_travel_with_the_checkpoint_and_older_checkpoints_load_with_ones(fitted, tmp_path):
    m, _ = fitted
    path = tmp_path / "abs.safetensors"
    save_module(path, m, {})
    loaded, _ = load_module(path, ABS, ABSConfig)
    assert torch.equal(loaded.class_scale, m.class_scale)
    tensors = load_file(str(path))                     # as written before the scales existed
    del tensors["class_scale"]
    with safe_open(str(path), framework="pt") as fh:
        header = fh.metadata()
    save_file(tensors, str(path), metadata=header)
    old, _ = load_module(path, ABS, ABSConfig)
    assert torch.equal(old.class_scale, torch.ones(10))
    assert all(torch.equal(a, b) for a, b in zip(old.parameters(), m.parameters()))


def test_cli_refuses_a_negative_image_count(tmp_path, capsys):
    assert main(["fit", "--dataset", "mnist", "--run", str(tmp_path / "r"), "--abs-class-scales", "-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--abs-class-scales" in err[0]
    assert not (tmp_path / "r").exists()
