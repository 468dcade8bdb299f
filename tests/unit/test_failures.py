from abstain.evaluate import result_rows
from abstain.failures import mistakes_set
from abstain.metrics import auroc


def test_mistake_rows_use_correct_vs_wrong(tiny_run, tiny_eval, mnist):
    _, sets = tiny_eval
    test = sets[0]
    y = mnist.y_test[:len(test.logits)]
    rows = {r["detector"]: r for r in result_rows(tiny_run, test, mistakes_set(test, y))}
    wrong = test.logits.argmax(1) != y
    assert rows["msp"]["n_mistakes"] == wrong.sum() > 0
    s = test.scores["msp"]
    assert rows["msp"]["auroc"] == auroc(s[~wrong], s[wrong])
    assert rows["msp"]["auroc"] > 0.8          # confidence does flag a weak classifier's errors


def test_attack_images_are_cached(tiny_run, mnist):
    import numpy as np
    from abstain.attacks import AttackConfig
    from abstain.failures import cached_attack
    x, y = mnist.x_test[:20], mnist.y_test[:20]
    cfg = AttackConfig(name="pgd", eps=0.1, steps=3)
    first = cached_attack(tiny_run, x, y, cfg, "cache_test")
    path = tiny_run.path / "scores" / "cache_test.adv.npz"
    assert path.exists()
    stamp = path.stat().st_mtime_ns
    assert np.array_equal(cached_attack(tiny_run, x, y, cfg, "cache_test"), first)
    assert path.stat().st_mtime_ns == stamp               # read back, not recomputed


def test_guard_acceptance_of_the_mistakes(tiny_run, tiny_eval, mnist):
    result, sets = tiny_eval
    test, g = sets[0], tiny_run.guard
    wrong = test.logits.argmax(1) != mnist.y_test[:len(test.logits)]
    assert result["set_sizes"]["mistakes"] == wrong.sum() > 0
    assert result["guard"]["accepted_failures"]["mistakes"] == g.decide(test.scores[g.detector][wrong]).mean()
    # the union guard lets fewer of the classifier's mistakes through than it accepts test digits
    assert result["guard"]["accepted_failures"]["mistakes"] < 0.5 * result["guard"]["accepted"]["test"]


def test_score_cache_is_keyed_on_the_images_and_the_code(tiny_run, mnist, monkeypatch):
    import numpy as np
    import abstain.run as run_module
    from abstain.run import Run
    from abstain.scoring import score_set
    path = tiny_run.path / "scores" / "cache_key_test.12.npz"
    first = score_set(tiny_run, "cache_key_test", mnist.x_test[:12], "in")
    stamp = path.stat().st_mtime_ns
    again = score_set(tiny_run, "cache_key_test", mnist.x_test[:12], "in")
    assert path.stat().st_mtime_ns == stamp and np.array_equal(again.logits, first.logits)
    # same name and size, other images: scored anew, not served from the cache
    other = score_set(tiny_run, "cache_key_test", mnist.x_test[12:24], "in")
    assert path.stat().st_mtime_ns != stamp
    assert not np.array_equal(other.logits, first.logits)
    np.testing.assert_allclose(other.logits, tiny_run.guard.scores(mnist.x_test[12:24])[1], rtol=1e-6)
    # other scoring code (another checkout): another fingerprint, so the cache is stale
    monkeypatch.setattr(run_module, "code_fingerprint", lambda: "from-other-code")
    moved = Run(tiny_run.path, tiny_run.config, tiny_run.models, tiny_run.guard, tiny_run.info)
    assert moved.fingerprint != tiny_run.fingerprint
    stamp = path.stat().st_mtime_ns
    score_set(moved, "cache_key_test", mnist.x_test[12:24], "in")
    assert path.stat().st_mtime_ns != stamp
