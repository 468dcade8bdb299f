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
