import numpy as np
import pytest

from abstain.attacks import AttackConfig, attack, predict
from abstain.errors import InputError


@pytest.fixture(scope="module")
def batch(tiny_run, mnist):
    x, y = mnist.x_test[:200], mnist.y_test[:200]
    ok = predict(tiny_run.classifier, x) == y
    return x[ok][:100], y[ok][:100]


@pytest.mark.parametrize("name, eps, norm", [("fgsm", 0.2, np.inf), ("bim", 0.2, np.inf),
                                             ("pgd", 0.2, np.inf), ("pgd_l2", 2.0, 2)])
def test_attack_stays_in_ball_and_box(tiny_run, batch, name, eps, norm):
    x, y = batch
    adv = attack(tiny_run.classifier, x, y, AttackConfig(name=name, eps=eps, steps=10))
    delta = (adv - x.astype(np.float32) / 255).reshape(len(x), -1)
    assert adv.dtype == np.float32 and adv.min() >= 0 and adv.max() <= 1
    assert np.linalg.norm(delta, ord=norm, axis=1).max() <= eps * (1 + 1e-4)
    fooled = np.mean(predict(tiny_run.classifier, adv) != y)
    assert fooled > 0.3, f"{name} at eps {eps} fooled only {fooled:.0%} of a weak classifier"


def test_iterative_beats_single_step(tiny_run, batch):
    x, y = batch
    fgsm = attack(tiny_run.classifier, x, y, AttackConfig(name="fgsm", eps=0.1))
    pgd = attack(tiny_run.classifier, x, y, AttackConfig(name="pgd", eps=0.1, steps=20))
    clf = tiny_run.classifier
    assert np.mean(predict(clf, pgd) != y) >= np.mean(predict(clf, fgsm) != y)


def test_seeded(tiny_run, batch):
    x, y = batch
    cfg = AttackConfig(name="pgd", eps=0.1, steps=3, seed=7)
    assert np.array_equal(attack(tiny_run.classifier, x, y, cfg), attack(tiny_run.classifier, x, y, cfg))


def test_bad_config_and_labels(tiny_run, batch):
    with pytest.raises(InputError):
        AttackConfig(name="cw")
    with pytest.raises(InputError):
        AttackConfig(eps=0)
    x, y = batch
    with pytest.raises(InputError):
        attack(tiny_run.classifier, x, y[:3], AttackConfig())
    for bad, shown in ((np.where(y == y[0], 10, y), "0..9"), (np.where(y == y[0], -1, y), "0..9"),
                       (y.astype(np.float32), "integer")):
        with pytest.raises(InputError, match=shown):
            attack(tiny_run.classifier, x, bad, AttackConfig())
