"""Marginal Fisher Analysis against a direct evaluation of its graphs and objective."""

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion.mfa import MarginalFisherAnalysis, intrinsic_graph, penalty_graph


@parametrize_with_checks([MarginalFisherAnalysis(), MarginalFisherAnalysis(n_components=1, k2=10, pca=0.95)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def brute_force_graphs(X, y, k1, k2):
    """The two MFA graphs by their definitions, with plain loops."""
    n = len(X)
    dist = ((X[:, None] - X[None]) ** 2).sum(-1)
    W, Wp = np.zeros((n, n)), np.zeros((n, n))
    for j in range(n):
        same = [i for i in np.argsort(dist[j], kind="stable") if i != j and y[i] == y[j]]
        for i in same[:k1]:
            W[i, j] = W[j, i] = 1
    for c in np.unique(y):
        pairs = sorted((dist[i, j], i, j) for i in range(n) for j in range(n) if y[i] == c and y[j] != c)
        for _, i, j in pairs[:k2]:
            Wp[i, j] = Wp[j, i] = 1
    return W, Wp


def ratio(w, X, W, Wp):
    """S_c / S_p of direction w, as the double sums of the paper."""
    p = X @ w
    diff = (p[:, None] - p[None]) ** 2
    return (W * diff).sum() / (Wp * diff).sum()


@pytest.fixture
def small_data():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    means = np.array([[0, 0, 0, 0, 0], [2, 0, 1, 0, 0], [0, 2, -1, 0, 0]]) * 0.8
    X = rng.normal(size=(60, 5)) * [1, 1, 1, 1, 3] + means[y]
    return X, y


def test_graphs_match_their_definitions(small_data):
    X, y = small_data
    W, Wp = brute_force_graphs(X, y, k1=4, k2=15)
    np.testing.assert_array_equal(intrinsic_graph(X, y, 4).toarray(), W)
    np.testing.assert_array_equal(penalty_graph(X, y, 15).toarray(), Wp)
    assert np.all(W[y[:, None] != y[None]] == 0) and np.all(Wp[y[:, None] == y[None]] == 0)


def test_k2_scales_with_class_size_by_default(small_data):
    X, y = small_data
    # 5 pairs per class member: 100 pairs per class of 20, against 15 with a fixed k2
    assert penalty_graph(X, y, None).nnz >= 2 * 100 > penalty_graph(X, y, 15).nnz


def test_directions_minimise_the_objective(small_data):
    X, y = small_data
    mfa = MarginalFisherAnalysis(n_components=2, k1=4, k2=15, reg=1e-9).fit(X, y)
    W, Wp = brute_force_graphs(X - mfa.mean_, y, 4, 15)
    best = ratio(mfa.components_[0], X, W, Wp)
    rng = np.random.default_rng(1)
    random_ratios = [ratio(w, X, W, Wp) for w in rng.normal(size=(500, 5))]
    pca_ratio = ratio(PCA(1).fit(X).components_[0], X, W, Wp)
    assert best <= min(random_ratios) * (1 + 1e-6)
    assert best < 0.8 * pca_ratio
    np.testing.assert_allclose(mfa.eigenvalues_[0], best, rtol=1e-5)
    assert mfa.eigenvalues_[0] <= mfa.eigenvalues_[1]
    np.testing.assert_allclose(np.linalg.norm(mfa.components_, axis=1), 1.0)


def test_recovers_the_only_discriminative_axis():
    rng = np.random.default_rng(2)
    n = 200
    y = np.repeat([0, 1], n // 2)
    X = rng.normal(size=(n, 6)) * [5, 4, 3, 0.5, 3, 4]  # large variance everywhere but axis 3
    X[:, 3] += np.where(y == 1, 1.5, -1.5)
    mfa = MarginalFisherAnalysis(n_components=1).fit(X, y)
    axis = np.eye(6)[3]
    assert abs(mfa.components_[0] @ axis) > 0.95
    assert abs(PCA(1).fit(X).components_[0] @ axis) < 0.3  # the variance is elsewhere
    projected = mfa.transform(X)[:, 0]
    gap = abs(projected[y == 0].mean() - projected[y == 1].mean())
    assert gap > 4 * np.sqrt((projected[y == 0].var() + projected[y == 1].var()) / 2)


def test_in_a_pipeline_beats_raw_features_on_noisy_problems():
    def accuracy(seed, *steps):
        rng = np.random.default_rng(seed)
        y = np.repeat(np.arange(4), 100)
        X = np.hstack([rng.normal(size=(400, 3)) + rng.normal(0, 1.5, (4, 3))[y], rng.normal(size=(400, 40))])
        train = np.arange(400) % 2 == 0
        model = make_pipeline(StandardScaler(), *steps, KNeighborsClassifier(5)).fit(X[train], y[train])
        return model.score(X[~train], y[~train])

    seeds = range(4)
    with_mfa = np.mean([accuracy(s, MarginalFisherAnalysis(n_components=3)) for s in seeds])
    assert with_mfa > np.mean([accuracy(s) for s in seeds]) + 0.1


def test_pca_dimension_and_errors():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(30, 50)), np.repeat([0, 1, 2], 10)
    assert MarginalFisherAnalysis().fit(X, y).n_pca_components_ == 27  # n_samples - n_classes
    assert MarginalFisherAnalysis(pca=5).fit(X, y).n_pca_components_ == 5
    assert MarginalFisherAnalysis(n_components=9, pca=4).fit(X, y).components_.shape == (4, 50)
    assert list(MarginalFisherAnalysis().fit(X, y).get_feature_names_out()) == ["mfa0", "mfa1"]
    with pytest.raises(ValueError, match="at least 2 classes"):
        MarginalFisherAnalysis().fit(X, np.zeros(30))
