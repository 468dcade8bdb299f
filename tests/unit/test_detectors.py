"""The detector contract, run over every registered detector."""
import numpy as np
import pytest

from abstain.detectors import DETECTORS, make_detector
from abstain.errors import InputError, NotFittedError


def _data(name, run, mnist):
    """(X_fit, y_fit, X_in, X_far) in the detector's input view."""
    cls = DETECTORS[name]
    rng = np.random.default_rng(1)
    if cls.input in ("images", "layers"):
        far = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
        sets = mnist.x_train[:500], mnist.x_test[:64], far
        if cls.input == "layers":          # the images and the classifier's activations on them
            from abstain.views import compute_views
            sets = [compute_views(run.classifier, x)["layers"] for x in sets]
        return sets[0], mnist.y_train[:500], sets[1], sets[2]
    if cls.input == "scores":      # a combination: its parts' scores, from the run's own guard
        parts = list(make_detector(name).parts)
        cols = lambda x: np.column_stack(tiny_parts(run, x, parts))  # noqa: E731
        far = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
        return cols(mnist.x_val[:2000]), mnist.y_val[:2000], cols(mnist.x_test[:64]), cols(far)
    from abstain.views import compute_views
    fit_v = compute_views(run.classifier, mnist.x_val[:2000])
    in_v = compute_views(run.classifier, mnist.x_test[:64])
    if cls.input == "logits":
        far = np.zeros((64, 10)) + rng.normal(0, 0.01, (64, 10))    # flat logits: no class at all
    else:  # features far beyond anything seen in training
        far = in_v["features"] * 0 + 50.0 * rng.standard_normal(in_v["features"].shape)
    return fit_v[cls.input], mnist.y_val[:2000], in_v[cls.input], far


def tiny_parts(run, images, parts):
    scores, _ = run.guard.scores(images, parts)
    return [scores[p] for p in parts]


def _make(name, run):
    cls = DETECTORS[name]
    return make_detector(name, **{m: run.models[m] for m in cls.model_params})


@pytest.fixture(params=sorted(DETECTORS))
def name(request):
    return request.param


def test_registry_has_the_foundation_names():
    assert {"msp", "max_logit", "energy", "temperature", "vae_elbo", "vae_iwae"} <= set(DETECTORS)


def test_not_fitted_raises(name, tiny_run, mnist):
    _, _, x_in, _ = _data(name, tiny_run, mnist)
    with pytest.raises(NotFittedError):
        _make(name, tiny_run).score_samples(x_in)


def test_contract(name, tiny_run, mnist):
    x_fit, y_fit, x_in, x_far = _data(name, tiny_run, mnist)
    det = _make(name, tiny_run)
    assert det.fit(x_fit, y_fit) is det
    s_in, s_far = det.score_samples(x_in), det.score_samples(x_far)
    assert s_in.shape == (len(x_in),) and np.isfinite(s_in).all() and np.isfinite(s_far).all()
    # one score sign: far-away inputs must score lower than in-distribution ones
    assert np.median(s_far) < np.median(s_in)
    assert np.mean(s_far[:, None] < s_in[None, :]) > 0.9
    # deterministic: the same detector scores the same input the same way, whatever its batch
    assert np.array_equal(det.score_samples(x_in), s_in)
    # atol: `complexity` is a difference of two ~2,000-bit terms, so float32 noise shows absolutely
    np.testing.assert_allclose(det.score_samples(x_in[3:4]), s_in[3:4], rtol=1e-5, atol=1e-3)


def test_init_only_stores_params(name):
    det = make_detector(name)
    assert not [k for k in vars(det) if k.endswith("_")]
    assert set(det.get_params()) == set(vars(det))


def test_bad_input_is_input_error(name, tiny_run, mnist):
    x_fit, y_fit, x_in, _ = _data(name, tiny_run, mnist)
    det = _make(name, tiny_run).fit(x_fit, y_fit)
    bad = np.array(getattr(x_in, "images", x_in), dtype=np.float64)
    bad.flat[0] = np.nan
    with pytest.raises(InputError):
        det.score_samples(bad)


def test_unknown_detector_lists_known():
    with pytest.raises(InputError, match="msp"):
        make_detector("nope")


def test_temperature_minimises_nll(tiny_run, mnist):
    from abstain.views import compute_views
    v = compute_views(tiny_run.classifier, mnist.x_val[:3000])
    det = make_detector("temperature").fit(v["logits"], mnist.y_val[:3000])
    grid = np.exp(np.linspace(-2, 2, 401))
    from scipy.special import log_softmax
    nll = [-log_softmax(v["logits"] / t, 1)[np.arange(3000), mnist.y_val[:3000]].mean() for t in grid]
    assert det.temperature_ == pytest.approx(grid[int(np.argmin(nll))], rel=0.02)
    assert det.nll(v["logits"], mnist.y_val[:3000]) <= min(nll) + 1e-6


def test_iwae_is_tighter_than_elbo(tiny_run, mnist):
    x = mnist.x_test[:200]
    elbo = make_detector("vae_elbo", vae=tiny_run.vae, k=8).fit(x).score_samples(x)
    iw1 = make_detector("vae_iwae", vae=tiny_run.vae, k=1).fit(x).score_samples(x)
    iw64 = make_detector("vae_iwae", vae=tiny_run.vae, k=64).fit(x).score_samples(x)
    assert iw64.mean() > iw1.mean() and iw64.mean() > elbo.mean()
    # IWAE with k = 1 is a one-sample ELBO: equal up to Monte Carlo noise (0.5% of ~1,100 nats)
    assert abs(iw1.mean() - elbo.mean()) < 0.005 * abs(elbo.mean())
