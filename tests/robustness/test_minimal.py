"""Minimal-perturbation searches on the tiny run's CNN: every result is a real adversarial."""
import numpy as np
import pytest
import torch

from abstain.attacks import AttackConfig, attack_batch
from abstain.robustness.decision import closest_targets, noise_check, pool_candidates, walk
from abstain.robustness.evaluate import summarise
from abstain.robustness.minimal import Minima, SearchBudget, eps_search, gradient_line, norm_of, predict
from abstain.tensors import to_tensor

BUDGET = SearchBudget(steps=10, restarts=1, search_steps=7, line_targets=2, noise_draws=1)


@pytest.fixture(scope="module")
def model(tiny_run):
    return tiny_run.classifier


@pytest.fixture(scope="module")
def batch(model, mnist):
    x, y = to_tensor(mnist.x_test[:300]), torch.as_tensor(mnist.y_test[:300]).long()
    ok = predict(model, x) == y
    wrong = (~ok).nonzero().flatten()[:3]
    right = ok.nonzero().flatten()[:13]
    idx = torch.cat([wrong, right])
    assert len(wrong) == 3, "the tiny CNN should miss a few of 300 test digits"
    return x[idx], y[idx], len(wrong)


def _verify(model, minima, norm):
    """Every finite minimum is an image the model misclassifies, at exactly that distance."""
    done = torch.isfinite(minima.size[norm])
    assert (predict(model, minima.adv[norm][done]) != minima.y[done]).all()
    d = norm_of(minima.adv[norm] - minima.x, norm)
    assert torch.allclose(d[done], minima.size[norm][done], atol=1e-5)
    assert minima.adv[norm].min() >= 0 and minima.adv[norm].max() <= 1


def test_misclassified_clean_image_has_minimum_zero(model, batch):
    x, y, k = batch
    m = Minima(model, x, y)
    for norm in ("l2", "linf"):
        assert (m.size[norm][:k] == 0).all() and torch.isinf(m.size[norm][k:]).all()
    assert m.todo().tolist() == list(range(k, len(x)))
    m.offer(m.todo(), x[k:], "nothing")                      # the clean images fool nothing
    assert torch.isinf(m.size["l2"][k:]).all()


@pytest.mark.parametrize("norm, grid", [("linf", np.arange(0.02, 0.42, 0.02)), ("l2", np.arange(0.25, 5.01, 0.25))])
def test_eps_bisection_matches_a_grid_scan(model, batch, norm, grid):
    x, y, k = batch
    m = Minima(model, x, y)
    eps_search(m, norm, BUDGET, torch.Generator().manual_seed(0))
    _verify(model, m, norm)
    assert torch.isfinite(m.size[norm]).all()
    # the smallest grid eps at which the same BIM attack fools each image
    name = "bim" if norm == "linf" else "bim_l2"
    scan = torch.full((len(x) - k,), np.inf)
    for eps in grid[::-1]:
        adv = attack_batch(model, x[k:], y[k:], AttackConfig(name=name, eps=float(eps), steps=10), None)
        scan[predict(model, adv) != y[k:]] = float(eps)
    tol = grid[1] - grid[0]
    assert (m.size[norm][k:] <= scan + tol).all(), (m.size[norm][k:], scan)


def test_decision_line_is_misclassified_and_shorter_than_the_line(model, batch, mnist):
    x, y, k = batch
    pool_x, pool_y = to_tensor(mnist.x_test[1000:1500]), torch.as_tensor(mnist.y_test[1000:1500]).long()
    m = Minima(model, x, y)
    idx = m.todo()
    cand, dist = pool_candidates(x[idx], pool_x, pool_y)
    targets, valid = closest_targets(y[idx], cand, dist, 1)
    assert valid.all()
    t = targets[0]
    boundary, usable = walk(m, idx, t, BUDGET, "line_image")
    assert usable.any()
    assert (predict(model, boundary[usable]) != y[idx][usable]).all()
    for norm in ("l2", "linf"):
        full = norm_of(t - x[idx], norm)
        assert (norm_of(boundary - x[idx], norm)[usable] <= full[usable] + 1e-6).all()
        assert (m.size[norm][idx][usable] <= full[usable] + 1e-6).all()
    _verify(model, m, "l2")


def test_fgsm_line_and_noise_give_real_adversarials(model, batch):
    x, y, k = batch
    m = Minima(model, x, y)
    noise = noise_check(m, BUDGET, torch.Generator().manual_seed(0))
    acc = noise["gaussian"]["accuracy"]                   # independent draws: not monotone
    assert max(acc) <= (len(x) - k) / len(x) and acc[-1] < acc[0]
    for norm in ("l2", "linf"):
        gradient_line(m, norm, BUDGET)
        _verify(model, m, norm)
    assert torch.isfinite(m.size["linf"]).float().mean() > 0.5


def test_curve_is_one_minus_share_fooled(model, batch):
    x, y, k = batch
    m = Minima(model, x, y)
    eps_search(m, "linf", SearchBudget(steps=5, restarts=0, search_steps=4), torch.Generator().manual_seed(0))
    m.size["linf"][-1] = np.inf                                  # one image nothing fools
    s = summarise(m)
    curve = np.array(s["linf_curve"]["accuracy"])
    assert (np.diff(curve) <= 0).all() and curve[0] == pytest.approx(s["clean_accuracy"])
    size = m.size["linf"].numpy()
    for e, a in zip(s["linf_curve"]["eps"], curve):
        assert a == pytest.approx(1 - np.mean(size <= e), abs=1e-4)
    assert s["acc_linf_0.3"] == pytest.approx(np.mean(size > 0.3), abs=1e-4)
    assert s["linf_median"] == pytest.approx(float(np.median(size)), abs=1e-4)
    assert s["linf_minimal"][-1] is None and s["linf_unfooled"] == 1
    assert s["linf_found_by"]["clean"] == k
