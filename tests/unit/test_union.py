"""The `union` guard: abstain when any part would, on the tiny real run."""
import numpy as np
import pytest

from abstain.detectors import make_detector
from abstain.errors import InputError
from abstain.guard import Guard
from abstain.metrics import threshold_at

PARTS = ["msp", "mahalanobis_layers"]


def test_ranks_are_validation_ranks_and_score_is_the_lowest_share(rng):
    val = rng.normal(size=(1000, 2)) * [1.0, 30.0]
    det = make_detector("union", parts=("a", "b"), shares=(0.8, 0.2)).fit(val)
    u = det.ranks(val)
    for j in range(2):                       # the i-th smallest validation score has rank (i + 0.5) / n
        order = np.argsort(val[:, j])
        np.testing.assert_allclose(u[order, j], (np.arange(1000) + 0.5) / 1000)
    np.testing.assert_allclose(det.score_samples(val), np.minimum(u[:, 0] / 0.8, u[:, 1] / 0.2))
    # below every validation score the rank keeps falling, so far-away inputs still rank lower
    far = val.min(0) - np.array([[1.0, 30.0], [2.0, 60.0]])
    r = det.ranks(far)
    assert (r < 0.5 / 1000).all() and (r[1] < r[0]).all()


def test_bad_union_settings_are_input_errors(rng):
    with pytest.raises(InputError, match="shares"):
        make_detector("union", parts=("a", "b"), shares=(1.0,)).fit(rng.normal(size=(10, 2)))
    with pytest.raises(InputError, match="3 score columns"):
        make_detector("union", parts=("a", "b", "c"), shares=(1, 1, 1)).fit(rng.normal(size=(10, 2)))


def test_guard_refuses_a_union_of_missing_parts(tiny_run):
    dets = {"msp": tiny_run.guard.detectors["msp"], "union": make_detector("union")}
    with pytest.raises(InputError, match="mahalanobis_layers"):
        Guard(tiny_run.classifier, dets, "union")


def test_union_guard_abstains_when_a_part_would(tiny_run, mnist):
    """Calibrated to 95%, the union guard is `msp < t1 or mahalanobis_layers < t2` for the
    thresholds at the parts' own shares of one common level, with the shares 0.8 : 0.2."""
    g = tiny_run.guard
    assert g.detector == "union" and list(g.detectors["union"].parts) == PARTS
    s, _ = g.scores(mnist.x_val, ["union", *PARTS])
    ok = g.decide(s["union"])
    assert 0.95 <= ok.mean() <= 0.951
    level = g.threshold_              # one common level for the parts' rank / share
    u = g.detectors["union"].ranks(np.column_stack([s[p] for p in PARTS]))
    flagged = [u[:, j] / share < level for j, share in enumerate(g.detectors["union"].shares)]
    np.testing.assert_array_equal(~ok, flagged[0] | flagged[1])
    # `check` names the parts that flagged each abstention
    idx = np.flatnonzero(~ok)[:8]
    for i, v in zip(idx, g.check(mnist.x_val[idx])):
        named = [p for j, p in enumerate(PARTS) if flagged[j][i]]
        assert v.verdict == "abstain" and v.reason.endswith("flagged by " + ", ".join(named))
    # each part rejects about its share of the 5% (less the images both reject)
    rej = [f.mean() for f in flagged]
    assert 0.03 <= rej[0] <= 0.05 and 0.007 <= rej[1] <= 0.015


def test_union_guard_catches_mistakes_and_ood(tiny_run, tiny_eval, mnist):
    """The point of the union, measured on the tiny run: at the same 95% validation acceptance it
    leaves fewer mistakes among the accepted test digits than `mahalanobis_layers` alone, and
    accepts FashionMNIST and noise about as rarely."""
    result, sets = tiny_eval
    test = sets[0]
    y = mnist.y_test[:len(test.logits)]
    wrong = test.logits.argmax(1) != y
    val, _ = tiny_run.guard.scores(mnist.x_val, ["union", "mahalanobis_layers"])
    t = {d: threshold_at(val[d], 0.95) for d in val}
    caught = {d: np.mean(test.scores[d][wrong] < t[d]) for d in t}
    assert caught["union"] > caught["mahalanobis_layers"] + 0.3, caught
    by = {s.name: s for s in sets}
    for name in ("fashion_mnist", "uniform_noise"):
        accepted = {d: np.mean(by[name].scores[d] >= t[d]) for d in t}
        assert accepted["union"] <= accepted["mahalanobis_layers"] + 0.02, (name, accepted)


def test_union_shares_refit_only_the_guard(tiny_run, tiny_config, mnist, tmp_path):
    """`abstain fit --union msp=0.999 mahalanobis_layers=0.001` (RunConfig.with_union) on a fitted run
    reuses its models and refits the guard: msp then takes nearly all of the 5% it turns away and
    mahalanobis_layers only the inputs below every validation score, which still includes noise."""
    import shutil

    from abstain.data.ood import make_ood
    from abstain.run import fit_run
    folder = tmp_path / "run"
    shutil.copytree(tiny_run.path, folder)
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.glob("*.safetensors") if p.name != "detectors.safetensors"}
    run = fit_run(folder, tiny_config.with_union({"msp": 0.999, "mahalanobis_layers": 0.001}))
    assert {p: (folder / p).stat().st_mtime_ns for p in stamp} == stamp          # no model retrained
    g, union = run.guard, run.guard.detectors["union"]
    assert list(union.parts) == PARTS and list(union.shares) == [0.999, 0.001]
    assert run.config.variants["union"] == {"detector": "union", "parts": PARTS, "shares": [0.999, 0.001]}
    s, _ = g.scores(mnist.x_val, PARTS)
    flagged = union.flagged(np.column_stack([s[p] for p in PARTS]), g.threshold_)
    assert 0.049 <= flagged[:, 0].mean() <= 0.051 and flagged[:, 1].mean() <= 0.0005
    noise = make_ood("uniform_noise", n=200)
    assert g.decide(g.scores(noise, ["union"])[0]["union"]).mean() == 0.0
    # the default guard gives mahalanobis_layers about a fifth of the rejections
    assert flagged[:, 1].mean() < 0.1 * np.mean(tiny_run.guard.detectors["union"].flagged(
        np.column_stack([s[p] for p in PARTS]), tiny_run.guard.threshold_)[:, 1])


@pytest.mark.parametrize("spec, message", [
    ({"msp": 0.0, "mahalanobis_layers": 1.0}, "share of msp"), ({"msp": 1.0, "knn": float("nan")}, "share of knn"),
    ({"msp": -1.0}, "share of msp"), ({}, "at least one part"), ({"msp": 1.0, "cifar": 1.0}, "'cifar' is not"),
    ({"union": 1.0}, "'union' is not")])
def test_bad_union_specs_are_refused_before_fitting(tiny_config, spec, message):
    with pytest.raises(InputError, match=message):
        tiny_config.with_union(spec)


def test_overview_names_the_union_parts(tiny_eval):
    from abstain.summary import guard_label, overview
    result, _ = tiny_eval
    assert "guard: union (msp 0.8, mahalanobis_layers 0.2) >= " in overview(result)
    assert guard_label({"detector": "msp", "threshold": 0.5}) == "msp"      # one-detector guards: no parts


def test_union_defaults_per_dataset():
    """`abstain fit` and `abstain demo` take RunConfig.for_dataset: MNIST's guard is msp 0.95 +
    the recentred layer score 0.05 (issue #6's trade, README "Probes"); FashionMNIST's the
    Union's own default, which a bare RunConfig() keeps as well."""
    from abstain.detectors.union import Union
    from abstain.run import RunConfig
    assert RunConfig.for_dataset("mnist").instances()["union"] == (
        "union", {"parts": ["msp", "mahalanobis_layers_centred"], "shares": [0.95, 0.05]})
    for cfg in (RunConfig.for_dataset("fashion_mnist"), RunConfig()):
        kind, params = cfg.instances()["union"]
        union = Union(**params)
        assert kind == "union" and list(union.parts) == ["msp", "mahalanobis_layers"] and list(union.shares) == [0.8, 0.2]
    # everything else of MNIST's defaults is the bare config's
    assert RunConfig.for_dataset("mnist").variants.keys() - {"union"} == RunConfig().variants.keys()


def test_union_of_other_parts(tiny_config):
    cfg = tiny_config.with_union({"msp": 0.8, "complexity": 0.2})
    kind, params = cfg.instances()["union"]
    assert kind == "union" and params == {"parts": ["msp", "complexity"], "shares": [0.8, 0.2]}


def test_recentred_layers_judge_what_is_drawn_not_where(tiny_run, mnist):
    """The run variant `mahalanobis_layers_centred` (recentre=True) re-centres each image by its
    centre of mass before scoring: test digits moved 4 px score as they do unmoved, where plain
    `mahalanobis_layers` marks many of them as unusual (below the validation digits' 1st
    percentile); uniform noise and letters fall below it for both."""
    from abstain.data.ood import make_ood
    from abstain.probes.transforms import translate
    dets = tiny_run.guard.detectors
    x = mnist.x_test[:500]
    share_low = {}
    for name in ("mahalanobis_layers", "mahalanobis_layers_centred"):
        det = dets[name]
        floor = np.quantile(det.score_samples(mnist.x_val[:2000]), 0.01)
        share_low[name] = [float(np.mean(det.score_samples(translate(x, dy=dy)) < floor)) for dy in (0, 4, -4)]
        for ood in ("uniform_noise", "letters"):
            assert np.mean(det.score_samples(make_ood(ood, n=200, seed=0)) < floor) >= 0.95, (name, ood)
    plain, centred = share_low["mahalanobis_layers"], share_low["mahalanobis_layers_centred"]
    assert max(centred) <= 0.05, share_low
    assert min(plain[1:]) >= centred[0] + 0.2, share_low


def test_layer_detectors_read_the_shared_pass_or_images_alike(tiny_run, mnist):
    """`mahalanobis_layers` (and its recentring variant) score the guard's "layers" view, the
    activations of the one shared forward pass, as they score the plain images, and the
    variant moves only the images recentring moves; the guard's scores are these."""
    from abstain.probes.transforms import translate
    from abstain.views import compute_views
    x = np.concatenate([mnist.x_test[:300], translate(mnist.x_test[300:400], dx=3)])
    views = compute_views(tiny_run.classifier, x)
    guard_scores, _ = tiny_run.guard.scores(x, ["mahalanobis_layers", "mahalanobis_layers_centred"], views)
    for name in ("mahalanobis_layers", "mahalanobis_layers_centred"):
        det = tiny_run.guard.detectors[name]
        from_images, from_view = det.score_samples(x), det.score_samples(views["layers"])
        np.testing.assert_allclose(from_view, from_images, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(guard_scores[name], from_view)
    # the moved digits really take the recentred path: most score as their unmoved originals
    centred = tiny_run.guard.detectors["mahalanobis_layers_centred"]
    same = np.isclose(centred.score_samples(views["layers"][300:]), centred.score_samples(mnist.x_test[300:400]))
    assert same.mean() > 0.8, same.mean()


def test_refits_reuse_only_what_would_fit_the_same(tiny_run, tiny_config):
    """A refit keeps the previous run's fitted detectors only where nothing they depend on
    changed: another `union` keeps every other detector; other ABS weights drop only `abs`;
    another classifier (every view comes from it) or other code drops them all."""
    import copy
    from dataclasses import replace

    from abstain.models.abs import ABS
    from abstain.run import reusable_detectors
    models = dict(tiny_run.models)
    union_only = tiny_config.with_union({"msp": 0.9, "mahalanobis_layers_centred": 0.1})
    kept = reusable_detectors(tiny_run, union_only, models)
    assert set(kept) == set(tiny_run.guard.detectors) - {"union"}
    assert kept["mahalanobis_layers"].classifier is models["classifier"]
    other_abs = dict(models, abs=ABS(tiny_run.models["abs"].config).eval())
    kept = reusable_detectors(tiny_run, tiny_config, other_abs)
    assert "abs" not in kept and {"msp", "gmm", "vae_elbo", "llr", "mahalanobis_layers"} <= set(kept)
    assert kept["vae_elbo"].vae is models["vae"]
    other_clf = copy.deepcopy(models["classifier"])
    with __import__("torch").no_grad():
        other_clf.head.bias.add_(1e-3)
    assert reusable_detectors(tiny_run, tiny_config, dict(models, classifier=other_clf)) == {}
    assert reusable_detectors(replace(tiny_run, code="older"), tiny_config, models) == {}
    assert reusable_detectors(None, tiny_config, models) == {}
