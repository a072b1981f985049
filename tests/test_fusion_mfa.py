"""Marginal Fisher Analysis against a direct evaluation of its graphs and objective."""

import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion.mfa import MarginalFisherAnalysis, MarginalFisherAnalysisCV, intrinsic_graph, penalty_graph


@parametrize_with_checks([
    MarginalFisherAnalysis(), MarginalFisherAnalysis(n_components=1, k2=10, pca=0.95, append=True),
    MarginalFisherAnalysisCV(param_grid={"pca": [2, 3]}, classifier=KNeighborsClassifier(1), n_splits=2),
])
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
    with pytest.raises(ValueError, match="append must be True or False, got 'False'"):
        MarginalFisherAnalysis(append="False").fit(X, y)


def test_per_block_solves_one_mfa_per_named_block_and_append_keeps_the_input(small_data):
    X, y = small_data
    frame = pd.DataFrame(np.hstack([X, X[:, ::-1]]), columns=[f"audio__a{i}" for i in range(5)]
                         + [f"video__v{i}" for i in range(5)])
    per_block = MarginalFisherAnalysis(n_components=2, k1=4, k2=15, per_block=True).fit(frame, y)
    assert per_block.components_.shape == (4, 10)
    assert not per_block.components_[:2, 5:].any() and not per_block.components_[2:, :5].any()
    alone = MarginalFisherAnalysis(n_components=2, k1=4, k2=15).fit(X, y)
    np.testing.assert_allclose(per_block.components_[:2, :5], alone.components_, atol=1e-8)
    appended = MarginalFisherAnalysis(n_components=2, k1=4, k2=15, append=True).fit(X, y)
    out = appended.transform(X)
    np.testing.assert_array_equal(out[:, :5], X)
    np.testing.assert_allclose(out[:, 5:], alone.transform(X))
    assert list(appended.get_feature_names_out()) == ["x0", "x1", "x2", "x3", "x4", "mfa0", "mfa1"]


def speakers_with_one_useful_subspace(seed=0, n_speakers=8, per_speaker=30):
    """Classes differ along 3 of 30 dimensions; speakers shift everything."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    y = np.tile(np.arange(3), len(speakers) // 3)
    X = rng.normal(size=(len(y), 30)) + rng.normal(0, 0.5, (n_speakers, 30))[speakers]
    X[:, :3] += 1.5 * rng.normal(size=(3, 3))[y]
    return X, y, speakers


def test_cv_chooses_inside_the_training_speakers_and_refits_the_best():
    X, y, speakers = speakers_with_one_useful_subspace()
    grid = {"pca": [2, 10], "k1": [3]}
    search = MarginalFisherAnalysisCV(param_grid=grid, classifier=make_pipeline(StandardScaler(), KNeighborsClassifier(5)),
                                      n_splits=4).fit(X, y, groups=speakers)
    scores = [r["score"] for r in search.search_results_]
    defaults = MarginalFisherAnalysis().get_params()
    assert [r["params"] for r in search.search_results_] == [defaults | {"k1": 3, "pca": 2}, defaults | {"k1": 3, "pca": 10}]
    assert search.best_score_ == max(scores) and search.best_params_ == search.search_results_[int(np.argmax(scores))]["params"]
    # the reported inner score is the speaker-grouped CV of MFA -> classifier, recomputed here
    folds = list(GroupKFold(4).split(X, y, speakers))
    model = make_pipeline(MarginalFisherAnalysis(**search.best_params_), StandardScaler(), KNeighborsClassifier(5))
    predicted = np.empty_like(y)
    for train, test in folds:
        predicted[test] = model.fit(X[train], y[train]).predict(X[test])
    assert np.isclose(balanced_accuracy_score(y, predicted), search.best_score_)
    refit = MarginalFisherAnalysis(**search.best_params_).fit(X, y)
    np.testing.assert_allclose(search.transform(X), refit.transform(X))
    # a fixed value applies to every candidate; the default grid gives 13 settings on one block
    fixed = MarginalFisherAnalysisCV(k1=2, param_grid=grid).fit(X, y, groups=speakers)
    assert [r["params"]["k1"] for r in fixed.search_results_] == [2, 2]
    assert len(MarginalFisherAnalysisCV()._candidates(n_blocks=1)) == 13
    assert len(MarginalFisherAnalysisCV()._candidates(n_blocks=2)) == 14
    with pytest.raises(ValueError, match="not parameters of MarginalFisherAnalysis"):
        MarginalFisherAnalysisCV(param_grid={"alpha": [1]}).fit(X, y)


class NeverFitted(KNeighborsClassifier):
    """A classifier that fails if the inner cross-validation fits it."""

    def fit(self, X, y):
        raise AssertionError("a single candidate must not be scored")


def test_cv_with_one_candidate_fits_it_without_inner_cv():
    X, y, speakers = speakers_with_one_useful_subspace()
    direct = MarginalFisherAnalysis().fit(X, y)
    for one in (MarginalFisherAnalysisCV(param_grid={}, classifier=NeverFitted()),
                MarginalFisherAnalysisCV(pca=None, k1=5, n_components=None, append=False, per_block=False,
                                         classifier=NeverFitted())):
        one.fit(X, y, groups=speakers)
        assert one.best_params_ == MarginalFisherAnalysis().get_params() and np.isnan(one.best_score_)
        assert len(one.search_results_) == 1
        np.testing.assert_allclose(one.transform(X), direct.transform(X))
    with pytest.raises(AssertionError, match="must not be scored"):  # two candidates are scored
        MarginalFisherAnalysisCV(param_grid={"k1": [3, 5]}, classifier=NeverFitted()).fit(X, y, groups=speakers)


def test_cv_default_classifier_is_logistic_regression_by_name():
    X, y, speakers = speakers_with_one_useful_subspace(n_speakers=4)
    search = MarginalFisherAnalysisCV(param_grid={"pca": [5], "append": [False, True]}).fit(X, y, groups=speakers)
    assert search.classifier == "logreg" and len(search.search_results_) == 2
    assert search.best_score_ > 0.6  # three classes: chance 1/3
    assert search.transform(X).shape == (len(X), 32 if search.best_params_["append"] else 2)
