import numpy as np
import pytest
from scipy.stats import mannwhitneyu
from sklearn.metrics import average_precision_score, roc_auc_score

from abstain import metrics
from abstain.errors import InputError


@pytest.fixture()
def scores(rng):
    return rng.normal(1.0, 1.0, 400), rng.normal(0.0, 1.0, 300)


def test_auroc_and_aupr_match_sklearn(scores):
    s_in, s_out = scores
    y = np.r_[np.ones(400), np.zeros(300)]
    s = np.r_[s_in, s_out]
    assert metrics.auroc(s_in, s_out) == pytest.approx(roc_auc_score(y, s))
    assert metrics.aupr_in(s_in, s_out) == pytest.approx(average_precision_score(y, s))
    assert metrics.aupr_out(s_in, s_out) == pytest.approx(average_precision_score(1 - y, -s))
    assert 0.7 < metrics.auroc(s_in, s_out) < 0.8      # N(1,1) vs N(0,1): Phi(1/sqrt 2) = 0.760


def test_sign_convention_higher_is_in_distribution():
    assert metrics.auroc([5, 6, 7], [1, 2, 3]) == 1.0
    assert metrics.auroc([1, 2, 3], [5, 6, 7]) == 0.0
    assert metrics.fpr95([5, 6, 7], [1, 2, 3]) == 0.0


def test_fpr95_is_share_of_ood_accepted_at_95_percent_in():
    s_in = np.arange(100.0)            # threshold accepting 95 of them: 5.0
    s_out = np.array([4.0, 5.0, 50.0, -1.0])
    assert metrics.threshold_at(s_in, 0.95) == 5.0
    assert np.mean(s_in >= 5.0) == 0.95
    assert metrics.fpr95(s_in, s_out) == 0.5


def test_detection_error_bruteforce(scores):
    s_in, s_out = scores
    best = min(0.5 * np.mean(s_in < t) + 0.5 * np.mean(s_out >= t) for t in np.r_[s_in, s_out, np.inf])
    assert metrics.detection_error(s_in, s_out) == pytest.approx(best)


def test_mann_whitney_matches_scipy(scores):
    s_in, s_out = scores
    ref = mannwhitneyu(s_in, s_out, alternative="greater").pvalue
    assert metrics.mann_whitney_p(s_in, s_out) == pytest.approx(ref)
    assert metrics.mann_whitney_p(s_in, s_out) < 1e-10


def test_ece_known_values():
    probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
    labels = np.array([0, 1, 0, 0])
    # bin 0.9: acc 0.5, conf 0.9 -> 0.4 * 0.5 ; bin 0.6: acc 1.0, conf 0.6 -> 0.4 * 0.5
    assert metrics.ece(probs, labels) == pytest.approx(0.4)
    assert metrics.ece(np.eye(3), np.arange(3)) == 0.0


def test_confidence_table():
    t = metrics.confidence_table(np.array([0.999, 0.96, 0.8, 0.5]))
    assert t == {">0.99": 0.25, ">0.95": 0.5, ">0.75": 0.75}


def test_bad_inputs():
    with pytest.raises(InputError):
        metrics.auroc([], [1.0])
    with pytest.raises(InputError):
        metrics.auroc([np.nan], [1.0])
    with pytest.raises(InputError):
        metrics.threshold_at([1.0], 1.5)
