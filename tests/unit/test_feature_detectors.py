"""gmm, mahalanobis and knn against scikit-learn references on small data (within 1e-4 relative)."""
import numpy as np
import pytest
from sklearn.covariance import EmpiricalCovariance
from sklearn.mixture import GaussianMixture
from sklearn.neighbors import NearestNeighbors

from abstain.detectors.features import GMM, KNN, Mahalanobis


@pytest.fixture()
def blobs(rng):
    centres = rng.normal(0, 4, (3, 5))
    y = rng.integers(0, 3, 600)
    X = centres[y] + rng.normal(0, 1, (600, 5)) * rng.uniform(0.5, 2, 5)
    return X, y, rng.normal(0, 4, (50, 5))


def _sklearn_gmm_from(det: GMM) -> GaussianMixture:
    ref = GaussianMixture(n_components=det.n_components, covariance_type=det.covariance_type)
    ref.weights_, ref.means_, ref.covariances_ = det.weights_, det.means_, det.covariances_
    if det.covariance_type == "diag":
        ref.precisions_cholesky_ = 1 / np.sqrt(det.covariances_)
    elif det.covariance_type == "tied":
        ref.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(det.covariances_))
    else:
        ref.precisions_cholesky_ = np.stack([np.linalg.cholesky(np.linalg.inv(c)) for c in det.covariances_])
    return ref


@pytest.mark.parametrize("kind", ["diag", "tied", "full"])
def test_gmm_log_density_equals_sklearn(blobs, kind):
    X, _, Q = blobs
    det = GMM(n_components=3, covariance_type=kind).fit(X)
    ref = _sklearn_gmm_from(det)
    np.testing.assert_allclose(det.score_samples(Q), ref.score_samples(Q), rtol=1e-4)
    np.testing.assert_allclose(det.score_samples(X), ref.score_samples(X), rtol=1e-4)


def test_gmm_fit_is_seeded_and_log_density_is_differentiable(blobs):
    import torch
    X, _, Q = blobs
    a, b = GMM(n_components=3, seed=4).fit(X), GMM(n_components=3, seed=4).fit(X)
    assert np.array_equal(a.means_, b.means_)
    f = torch.tensor(Q, dtype=torch.float64, requires_grad=True)
    a.log_density(f).sum().backward()
    # the gradient of log p at a point far from the data points back towards the data
    far = torch.tensor(X.mean(0) + 30.0, dtype=torch.float64, requires_grad=True)
    a.log_density(far[None]).sum().backward()
    assert torch.dot(far.grad, torch.tensor(X.mean(0)) - far.detach()) > 0
    assert torch.isfinite(f.grad).all()


def test_mahalanobis_equals_sklearn(blobs):
    X, y, Q = blobs
    det = Mahalanobis(reg_covar=0).fit(X, y)
    dists = []
    centred = np.concatenate([X[y == c] - X[y == c].mean(0) for c in range(3)])
    shared = EmpiricalCovariance(assume_centered=True).fit(centred)
    for c in range(3):
        shared.location_ = X[y == c].mean(0)
        dists.append(shared.mahalanobis(Q))
    np.testing.assert_allclose(det.score_samples(Q), -np.min(dists, axis=0), rtol=1e-4)


def test_knn_equals_sklearn(blobs, rng):
    X, _, Q = blobs
    Q = np.concatenate([Q, rng.normal(0, 4, (650, 5))])    # 700 queries: scored in several chunks
    det = KNN(k=7).fit(X)
    norm = lambda a: a / np.linalg.norm(a, axis=1, keepdims=True)  # noqa: E731
    dist, _ = NearestNeighbors(n_neighbors=7).fit(norm(X)).kneighbors(norm(Q))
    np.testing.assert_allclose(det.score_samples(Q), -dist[:, -1], rtol=1e-4, atol=1e-6)
