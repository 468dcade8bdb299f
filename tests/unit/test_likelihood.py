"""The likelihood fixes (issue #4): their building blocks checked against references."""
import math

import numpy as np
import pytest
import torch
from scipy.stats import gaussian_kde

from abstain.detectors import make_detector
from abstain.detectors.likelihood import code_length_bits
from abstain.detectors.vae import vae_statistics
from abstain.errors import InputError
from abstain.models.vae import ConvVAE, VAEConfig, discretised_logistic, mutate


@pytest.mark.parametrize("mean,log_scale", [(0.3, -3.0), (0.0, -5.0), (0.99, -2.0), (0.4, -1.5)])
def test_discretised_logistic_is_a_distribution_over_256_levels(mean, log_scale):
    x = torch.arange(256, dtype=torch.float32) / 255
    p = discretised_logistic(x, torch.tensor(mean), torch.tensor(log_scale)).double().exp()
    assert abs(p.sum().item() - 1) < 1e-4
    level = round(mean * 255)
    if 0 < level < 255:          # the most likely interior level is the mean's (end bins hold the tails)
        assert p[1:-1].argmax().item() + 1 == level
    else:
        assert p.argmax().item() == level


def test_logistic_vae_bound_is_a_probability_of_the_8bit_image(mnist):
    torch.manual_seed(0)
    vae = ConvVAE(VAEConfig(likelihood="logistic")).eval()
    s = vae_statistics(vae, mnist.x_test[:20], k=4)
    # an untrained model: still a proper (sub-)probability, so -log p >= 0 bits per image
    assert (s["iwae"] < 0).all() and np.isfinite(s["iwae"]).all()
    np.testing.assert_allclose(s["elbo"], -(s["rate"] + s["distortion"]))


def test_mutate_replaces_the_given_share_of_pixels():
    x = torch.zeros(20, 1, 28, 28)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(mutate(x, 0.0, gen), x)
    changed = (mutate(x, 0.3, gen) != 0).float().mean().item()
    assert abs(changed - 0.3) < 0.01
    assert (mutate(x, 1.0, gen) != 0).float().mean().item() > 0.99


def test_code_length_orders_simple_below_noisy(mnist, rng):
    blank = np.zeros((3, 28, 28), np.uint8)
    noise = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
    for comp in ("png", "zlib"):
        b, d, n = (code_length_bits(x, comp) for x in (blank, mnist.x_test[:3], noise))
        assert (b < d).all() and (d < n).all()
        assert (n > 8 * 784 * 0.95).all()            # noise barely compresses
        np.testing.assert_array_equal(code_length_bits(mnist.x_test[:3] / 255.0, comp), d)
    with pytest.raises(InputError):
        code_length_bits(blank, "gzip")


def test_statistics_are_shared_and_batch_independent(tiny_run, mnist):
    vae = tiny_run.models["vae"]
    x = mnist.x_test[:40]
    a = vae_statistics(vae, x, k=8)
    assert vae_statistics(vae, x.copy(), k=8) is a                      # memoised by content
    one = vae_statistics(vae, x[5:6], k=8)
    np.testing.assert_allclose(one["iwae"], a["iwae"][5:6], rtol=1e-5)
    iw = make_detector("vae_iwae", vae=vae, k=8).fit(x).score_samples(x)
    np.testing.assert_allclose(iw, a["iwae"])


def test_typicality_batch_of_one_is_the_single_input_test(tiny_run, mnist):
    det = make_detector("typicality", vae=tiny_run.models["vae"]).fit(mnist.x_val[:500])
    s = det.score_samples(mnist.x_test[:30])
    np.testing.assert_allclose(det.score_batches(mnist.x_test[:30], 1), s)
    b = det.score_batches(mnist.x_test[:30], 10)
    nll = -vae_statistics(tiny_run.models["vae"], mnist.x_test[:30], 16)["iwae"]
    np.testing.assert_allclose(b, -np.abs(nll.reshape(3, 10).mean(1) - det.typical_nll_))
    with pytest.raises(InputError):
        det.score_batches(mnist.x_test[:5], 10)


def test_dose_is_a_sum_of_scott_kdes(tiny_run, mnist):
    det = make_detector("dose", vae=tiny_run.models["vae"]).fit(mnist.x_val[:400])
    x = mnist.x_test[:25]
    s = vae_statistics(tiny_run.models["vae"], x, 16)
    ref = np.zeros(len(x))
    for d, name in enumerate(("iwae", "elbo", "rate", "distortion")):
        col = det.stats_[:, d]
        kde = gaussian_kde(col, bw_method=det.bandwidth_[d] / col.std(ddof=1))
        ref += np.log(kde(s[name]))
    np.testing.assert_allclose(det.score_samples(x), ref, rtol=1e-6, atol=1e-6)


def test_complexity_adds_code_length_to_log2_likelihood(tiny_run, mnist):
    x = mnist.x_test[:10]
    det = make_detector("complexity", vae=tiny_run.models["vae"], compressor="zlib").fit(x)
    iw = vae_statistics(tiny_run.models["vae"], x, 16)["iwae"]
    np.testing.assert_allclose(det.score_samples(x), iw / math.log(2) + code_length_bits(x, "zlib"))


def test_llr_subtracts_the_background_bound(tiny_run, mnist):
    x = mnist.x_test[:10]
    det = make_detector("llr", vae=tiny_run.models["vae"],
                        vae_background=tiny_run.models["vae_background"]).fit(x)
    fg = vae_statistics(tiny_run.models["vae"], x, 16)["iwae"]
    bg = vae_statistics(tiny_run.models["vae_background"], x, 16)["iwae"]
    np.testing.assert_allclose(det.score_samples(x), fg - bg)
