"""ABS: Danskin gradient, inference modes, confidence offset, prototype cache, projection."""
import numpy as np
import pytest
import torch

from abstain.models.abs import _SHARED_PROTOTYPES, ABS, project
from abstain.models.abs_modes import MODES, Inference
from abstain.tensors import to_tensor

SMALL = Inference(prototypes=300, steps=5, lr=0.05)


@pytest.fixture(scope="module")
def model(tiny_run):
    return tiny_run.models["abs"].eval()


@pytest.fixture(scope="module")
def digits(mnist):
    return to_tensor(mnist.x_test[:32]), torch.from_numpy(mnist.y_test[:32]).long()


def test_forward_gives_danskin_gradient(model, digits):
    x = digits[0][:8].clone().requires_grad_(True)
    before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    view = model.with_mode(SMALL)
    losses = -view(x)                                           # (8, 10): a_y l_y
    grads = torch.autograd.grad(losses[:, 3].sum(), x)[0]
    z, rec = model.solve(x.detach().flatten(1), SMALL)
    a3 = model.class_scale[3]
    expected = 2.0 * a3 * (x.detach().flatten(1) - rec[:, 3]) / 784
    torch.testing.assert_close(grads.flatten(1), expected, rtol=1e-5, atol=1e-8)
    # the loss itself is the one at the optimum, and no gradient leaks into the weights
    l3 = ((x.detach().flatten(1) - rec[:, 3]).pow(2).sum(1) + 0.5 * z[:, 3].pow(2).sum(1)) / 784
    torch.testing.assert_close(losses[:, 3].detach(), a3 * l3)
    after = [p.grad for p in model.parameters()]
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(after, before))


def test_danskin_gradient_matches_finite_differences_of_the_loss_at_z_star(model, digits):
    x = digits[0][:1].double().flatten(1)
    z, rec = model.solve(x.float(), SMALL)
    g = 2.0 * (x - rec[:, 0].double()) / 784
    d = torch.randn_like(x)
    eps = 1e-4

    def loss(xx):                                 # l_0 at the fixed optimum z*
        return ((xx - rec[:, 0].double()).pow(2).sum() + 0.5 * z[:, 0].double().pow(2).sum()) / 784
    numeric = (loss(x + eps * d) - loss(x - eps * d)) / (2 * eps)
    assert float(numeric) == pytest.approx(float((g * d).sum()), rel=1e-6)


def test_optimisation_lowers_the_loss_of_every_class(model, digits):
    x = digits[0][:16]
    start = -model.with_mode(Inference(300, 0))(x)
    refined = -model.with_mode(Inference(300, 20, 0.05))(x)
    assert (refined <= start + 1e-6).float().mean() > 0.95
    assert refined.mean() < start.mean()


def test_faithful_and_fast_agree_on_most_digits(model, digits):
    x, y = digits[0][:16], digits[1][:16]
    faithful = model.with_mode("faithful")(x).argmax(1)
    fast = model.with_mode("fast")(x).argmax(1)
    assert (faithful == fast).float().mean() >= 0.85
    # the tiny run's VAEs saw 3 epochs of 5,000 images (about 60% accuracy; chance is 10%)
    assert (faithful == y).float().mean() >= 0.4


def test_uniform_noise_gets_near_uniform_confidence(model, digits):
    noise = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    conf = model.confidence(model.with_mode("fast")(noise)).max(1).values
    assert conf.max() < 0.15 and conf.min() >= 0.1 - 1e-6
    digit_conf = model.confidence(model.with_mode("fast")(digits[0])).max(1).values
    assert digit_conf.median() > conf.max()


def test_confidence_is_a_distribution_with_the_offset(model):
    logits = -torch.tensor([[0.01, 0.5, 0.5], [0.3, 0.3, 0.3]])
    p = model.confidence(logits)
    torch.testing.assert_close(p.sum(1), torch.ones(2))
    torch.testing.assert_close(p[1], torch.full((3,), 1 / 3))
    w = np.exp(-440 * np.array([0.01, 0.5, 0.5])) + 3.9e-5
    np.testing.assert_allclose(p[0].numpy(), w / w.sum(), rtol=1e-5)


def test_prototype_cache_is_deterministic_and_most_probable(model):
    fresh = ABS(model.config)
    fresh.load_state_dict(model.state_dict())
    fresh.eval()
    z1, img1, c1 = model.prototypes(500)
    _SHARED_PROTOTYPES.clear()                     # decoded again, not shared
    z2, img2, c2 = fresh.prototypes(500)
    assert img2 is not img1
    assert torch.equal(z1, z2) and torch.allclose(img1, img2) and torch.allclose(c1, c2)
    assert img1.shape == (10, 500, 784) and z1.shape == (500, 8)
    draws = torch.randn(555, 8, generator=torch.Generator().manual_seed(model.config.prototype_seed))
    kept = set(map(tuple, z1.tolist()))
    dropped = torch.stack([d for d in draws if tuple(d.tolist()) not in kept])
    assert len(dropped) == 55 and dropped.norm(dim=1).min() >= z1.norm(dim=1).max()


def test_cache_follows_the_weights(model):
    m = ABS(model.config)
    m.load_state_dict(model.state_dict())
    m.eval()
    before = m.prototypes(100)[1].clone()
    with torch.no_grad():
        m.vaes[0].decoder[0].bias.add_(1.0)
    after = m.prototypes(100)[1]
    assert not torch.allclose(before[0], after[0]) and torch.allclose(before[1], after[1])
    with torch.no_grad():
        m.class_scale.mul_(1.1)                    # scales the losses, not the decoders
    assert m.prototypes(100)[1] is after


def test_models_with_the_same_weights_share_their_prototypes(model):
    def loaded(state):
        m = ABS(model.config)
        m.load_state_dict(state)
        return m.eval()
    a, b = loaded(model.state_dict()), loaded(model.state_dict())
    protos = a.prototypes(200)
    assert all(x is y for x, y in zip(b.prototypes(200), protos))      # not decoded again
    other = {k: v.clone() for k, v in model.state_dict().items()}
    other["vaes.3.decoder.0.bias"] += 0.5
    changed = loaded(other).prototypes(200)
    assert changed[1] is not protos[1] and not torch.allclose(changed[1][3], protos[1][3])
    assert torch.equal(changed[1][2], protos[1][2])                    # the other classes decode alike


def test_projection_keeps_latents_in_the_ball(model, digits):
    z = torch.randn(100, 10, 8) * 4
    p = project(z, 5.0)
    assert (p.norm(dim=-1) <= 5.0 + 1e-5).all()
    inside = z.norm(dim=-1) <= 5.0
    assert torch.equal(p[inside], z[inside])
    z_star, _ = model.solve(digits[0][:8].flatten(1), Inference(100, 10, lr=3.0))   # huge steps
    assert (z_star.norm(dim=-1) <= 5.0 + 1e-5).all()


def test_views_share_weights_and_binary_thresholds(model, digits):
    x = digits[0][:4]
    b = model.with_mode(SMALL).binary()
    assert b.binarize and not model.binarize and model.mode == "faithful"
    assert b.vaes is model.vaes
    torch.testing.assert_close(b(x), model.with_mode(SMALL)((x > 0.5).float()))
    with pytest.raises(ValueError, match="unknown ABS mode"):
        model.with_mode("nope")


def test_binary_gradient_passes_the_threshold_straight_through(model, digits):
    x = digits[0][:4].clone().requires_grad_(True)
    model.with_mode(SMALL).binary()(x)[:, 3].sum().backward()
    xb = (x.detach() > 0.5).float().requires_grad_(True)
    model.with_mode(SMALL)(xb)[:, 3].sum().backward()
    assert x.grad.abs().sum() > 0
    torch.testing.assert_close(x.grad, xb.grad)


def test_reconstructions_are_the_decoded_optima(model, digits):
    x = digits[0][:4]
    recs = model.with_mode(SMALL).reconstructions(x)
    assert recs.shape == (4, 10, 28, 28) and recs.min() >= 0 and recs.max() <= 1
    _, rec = model.solve(x.flatten(1), SMALL)
    torch.testing.assert_close(recs.flatten(2), rec)
    assert MODES["faithful"] == Inference(8000, 50, 0.05)


def test_training_without_every_class_is_an_input_error(mnist):
    from abstain.errors import InputError
    from abstain.train_abs import train_abs
    keep = mnist.y_train != 9
    with pytest.raises(InputError, match=r"none for \[9\]"):
        train_abs(ABS(), mnist.x_train[keep][:500], mnist.y_train[keep][:500], mnist.x_val, mnist.y_val)


QUICK = Inference(prototypes=300, steps=2, lr=0.05, refine=3)
SLOW = Inference(prototypes=300, steps=10, lr=0.05)


def _margins(model, x, inference):
    z, rec = model.solve(x, inference)
    best = (-model.class_scale * model._losses(x, z, rec)).topk(2, dim=1).values
    return best[:, 0] - best[:, 1]


def test_check_solves_the_close_images_again_and_only_them(model, digits):
    x = digits[0].flatten(1)                                               # 32 test digits
    # halfway between two neighbouring margins, so no image sits on the threshold (where a
    # last-bit difference between batch sizes could move it across)
    m = _margins(model, x, QUICK).sort().values
    margin = float(m[15] + m[16]) / 2
    checked = Inference(300, 2, 0.05, 3, check_margin=margin, check=SLOW)
    z, rec = model.solve(x, checked)
    close = _margins(model, x, QUICK) < margin
    assert 0 < int(close.sum()) < len(x)
    z_quick, rec_quick = model.solve(x[~close], QUICK)
    z_slow, rec_slow = model.solve(x[close], SLOW)
    torch.testing.assert_close(z[~close], z_quick)
    torch.testing.assert_close(rec[~close], rec_quick)
    torch.testing.assert_close(z[close], z_slow, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(rec[close], rec_slow, rtol=1e-4, atol=1e-5)
    # an image's answer does not depend on the batch it came in: singles give the batch's
    view = model.with_mode(checked)
    singles = torch.cat([view(x[i:i + 1].view(1, 1, 28, 28)) for i in range(8)])
    torch.testing.assert_close(singles, view(digits[0][:8]), rtol=1e-4, atol=1e-6)


def test_checked_mode_is_the_fast_mode_with_a_faithful_check():
    checked = MODES["checked"]
    assert checked.check is not None and checked.check_margin > 0
    assert (checked.prototypes, checked.steps, checked.lr, checked.refine) == \
        (MODES["fast"].prototypes, MODES["fast"].steps, MODES["fast"].lr, MODES["fast"].refine)
    assert (checked.check.steps, checked.check.lr) == (MODES["faithful"].steps, MODES["faithful"].lr)
    with pytest.raises(ValueError, match="check_margin > 0"):
        Inference(check_margin=0.01)
    with pytest.raises(ValueError, match="check_margin > 0"):
        Inference(check=SLOW)
