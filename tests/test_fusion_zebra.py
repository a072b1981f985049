"""Zebra Optimisation Algorithm feature selection."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion.zebra import ZebraFeatureSelector, feature_groups


def centroid():
    """A fast fitness classifier for the tests (the default, logistic regression, is slower)."""
    return make_pipeline(StandardScaler(), NearestCentroid())


# A small population and budget keep the ~50 checks fast; they test the API, not the search.
@parametrize_with_checks([
    ZebraFeatureSelector(classifier=centroid(), n_zebras=3, budget=18),
    ZebraFeatureSelector(classifier=centroid(), n_zebras=2, budget=4, max_candidates=2, transfer="sigmoid",
                         opposition=False, feature_groups="single"),
])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def hidden_informative(seed=0, n_speakers=20, per_speaker=20, n_features=1000, n_informative=8):
    """Speakers with their own offsets; a few informative features among many noise ones."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    y = rng.integers(0, 6, len(speakers))
    X = rng.normal(size=(len(y), n_features)) + 0.5 * rng.normal(size=(n_speakers, n_features))[speakers]
    informative = rng.choice(n_features, n_informative, replace=False)
    X[:, informative] += rng.normal(size=(6, n_informative))[y]
    return X, y, speakers, informative


def held_out_accuracy(X, y, train, mask):
    model = centroid().fit(X[train][:, mask], y[train])
    return balanced_accuracy_score(y[~train], model.predict(X[~train][:, mask]))


def test_beats_random_subsets_of_the_same_size_on_unseen_speakers():
    """The search itself, from random zebras only and with no acceptance rule."""
    X, y, speakers, informative = hidden_informative(n_features=400)
    train = speakers < 14  # 280 training clips x 400 features
    zebra = ZebraFeatureSelector(classifier=centroid(), budget=240, n_zebras=10, n_splits=4, max_candidates=100,
                                 start_with_all=False, min_gain=None,
                                 random_state=0).fit(X[train], y[train], groups=speakers[train])
    mask = zebra.get_support()
    assert len(set(np.flatnonzero(mask)) & set(informative)) >= 6
    rng = np.random.default_rng(1)
    random_scores = [held_out_accuracy(X, y, train, rng.choice(X.shape[1], mask.sum(), replace=False))
                     for _ in range(10)]
    accuracy = held_out_accuracy(X, y, train, mask)
    assert accuracy > np.mean(random_scores) + 0.2 and accuracy > max(random_scores)
    assert zebra.transform(X).shape == (len(X), mask.sum())
    assert len(zebra.candidates_) == 100 and all(len(columns) == 1 for _, columns in zebra.feature_groups_)
    assert zebra.cv_score_ > zebra.reference_scores_["random"] + 0.2
    assert zebra.cv_score_ > zebra.reference_scores_["all"]


def test_keeps_a_subset_whose_inner_gain_exceeds_its_standard_error():
    X, y, speakers, informative = hidden_informative(n_features=400)
    train = speakers < 14
    zebra = ZebraFeatureSelector(classifier=centroid(), budget=240, n_zebras=10, n_splits=4, max_candidates=100,
                                 random_state=0).fit(X[train], y[train], groups=speakers[train])
    assert not zebra.fell_back_ and zebra.gain_ > zebra.gain_se_ > 0
    assert np.isclose(zebra.cv_score_ - zebra.reference_scores_["all"], zebra.gain_, atol=0.05)
    assert zebra.support_.sum() < 100 and len(set(np.flatnonzero(zebra.support_)) & set(informative)) >= 6
    assert held_out_accuracy(X, y, train, zebra.support_) > held_out_accuracy(X, y, train, zebra.candidates_)


def test_keeps_all_groups_when_a_subset_is_better_only_by_chance():
    """Every column is an equally noisy copy of the same class signal: no subset is better
    than all of them, but the best of many random subsets looks as good on the inner folds."""
    rng = np.random.default_rng(5)
    speakers = np.repeat(np.arange(12), 24)
    y = np.tile(np.arange(4), 72)
    X = rng.normal(size=(4, 1))[y] + 3.0 * rng.normal(size=(len(y), 30)) + 0.3 * rng.normal(size=(12, 30))[speakers]
    train = speakers < 9
    settings = dict(classifier=centroid(), budget=60, n_zebras=5, random_state=0)
    plain = ZebraFeatureSelector(start_with_all=False, min_gain=None, **settings).fit(
        X[train], y[train], groups=speakers[train])
    assert plain.support_.sum() < 30
    default = ZebraFeatureSelector(**settings).fit(X[train], y[train], groups=speakers[train])
    assert default.support_.all() and default.cv_score_ == default.reference_scores_["all"]
    assert default.fell_back_ == (default.search_score_ != default.cv_score_)
    assert default.gain_ <= default.gain_se_


def test_selects_whole_groups_named_by_their_column():
    """Groups are all statistics of a column; an informative column's group is kept whole."""
    rng = np.random.default_rng(3)
    speakers = np.repeat(np.arange(10), 24)
    y = rng.integers(0, 4, len(speakers))
    statistics = ["mean", "std", "p50"]
    columns = {f"mfcc_{i}": rng.normal(size=(len(y), 3)) for i in range(30)}
    for i in (4, 17):  # two informative columns: each statistic carries a noisy copy of the class
        columns[f"mfcc_{i}"] += 0.8 * rng.normal(size=(4, 3))[y]
    names = [f"{column}_{s}" for column in columns for s in statistics]
    X = pd.DataFrame(np.hstack(list(columns.values())), columns=names)
    zebra = ZebraFeatureSelector(classifier=centroid(), budget=120, n_zebras=6, random_state=0)
    zebra.fit(X, y, groups=speakers)
    assert len(zebra.feature_groups_) == 30
    assert zebra.feature_groups_[4][0] == "mfcc_4" and list(zebra.feature_groups_[4][1]) == [12, 13, 14]
    assert {"mfcc_4", "mfcc_17"} <= set(zebra.selected_groups_)
    kept = list(zebra.get_feature_names_out())
    assert kept == [f"{g}_{s}" for g in sorted(zebra.selected_groups_, key=lambda g: int(g[5:])) for s in statistics]


class CountingCentroid(ClassifierMixin, BaseEstimator):
    """Nearest centroid that counts the fits of all its clones."""

    fits = []

    def fit(self, X, y):
        CountingCentroid.fits.append(X.shape[1])
        self.model_ = centroid().fit(X, y)
        self.classes_ = self.model_.classes_
        return self

    def predict(self, X):
        return self.model_.predict(X)


def test_budget_sets_the_iterations_and_repeated_masks_are_not_evaluated_again():
    X, y, speakers, _ = hidden_informative(n_speakers=6, n_features=12)
    fits = CountingCentroid.fits = []
    zebra = ZebraFeatureSelector(classifier=CountingCentroid(), budget=100, n_zebras=5, n_splits=3,
                                 random_state=0).fit(X, y, groups=speakers)
    assert zebra.n_iter_ == (100 - 2 * 5) // (2 * 5) == 9 and len(zebra.fitness_history_) == 10
    # 3 inner fits per distinct mask; 12 single-column groups repeat masks often
    # (+ the two reference masks, all groups and a random subset, unless seen before)
    assert 3 * zebra.n_evaluations_ < len(fits) <= 3 * (zebra.n_evaluations_ + 2)
    assert zebra.n_evaluations_ < 100
    with pytest.raises(ValueError, match="does not cover the initial population of 10"):
        ZebraFeatureSelector(classifier=centroid(), budget=9, n_zebras=5).fit(X, y)


def test_is_deterministic_for_a_seed_and_the_search_never_worsens():
    X, y, speakers, _ = hidden_informative(n_speakers=8, n_features=120)
    fits = [ZebraFeatureSelector(classifier=centroid(), budget=110, n_zebras=5, random_state=7).fit(X, y, groups=speakers)
            for _ in range(2)]
    np.testing.assert_array_equal(fits[0].support_, fits[1].support_)
    history = fits[0].fitness_history_
    assert len(history) == 11 and np.all(np.diff(history) <= 0) and history[-1] < history[0]
    expected_final = 0.99 * (1 - fits[0].cv_score_) + 0.01 * fits[0].support_.sum() / len(fits[0].candidates_)
    assert np.isclose(history[-1], expected_final)


def test_default_fitness_is_logistic_regression_by_name():
    X, y, speakers, informative = hidden_informative(n_speakers=6, n_features=30, n_informative=3)
    zebra = ZebraFeatureSelector(budget=40, n_zebras=4, random_state=0, progress=False).fit(X, y, groups=speakers)
    assert zebra.classifier == "logreg" and zebra.n_evaluations_ <= 40
    assert set(np.flatnonzero(zebra.support_)) & set(informative) and zebra.cv_score_ > 1 / 6 + 0.1
    with pytest.raises(Exception, match="unknown classifier 'lda'"):
        ZebraFeatureSelector(classifier="lda", budget=8, n_zebras=4).fit(X, y)


def test_opposition_start_keeps_the_better_of_a_mask_and_its_complement():
    X, y, speakers, _ = hidden_informative(n_speakers=8, n_features=40)
    complements = 0
    for seed in range(10):
        settings = dict(classifier=centroid(), n_zebras=1, budget=2, max_candidates=None, alpha=0.3,
                        start_with_all=False, min_gain=None, random_state=seed)
        plain = ZebraFeatureSelector(opposition=False, **settings).fit(X, y, groups=speakers)
        opposed = ZebraFeatureSelector(opposition=True, **settings).fit(X, y, groups=speakers)
        assert opposed.fitness_history_[0] <= plain.fitness_history_[0]
        # the opposite of position x is 1 - x: the complementary mask
        if (opposed.support_ == ~plain.support_).all():
            complements += 1
            assert opposed.fitness_history_[0] < plain.fitness_history_[0]
        else:
            np.testing.assert_array_equal(opposed.support_, plain.support_)
    assert 0 < complements < 10


def test_inner_cross_validation_is_grouped_by_speaker():
    """Features that identify speakers look perfect under clip-level CV, useless under speaker CV."""
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(12), 20)
    y = (speakers // 3) % 4  # each speaker shows one class only
    fingerprint = rng.normal(0, 3, (12, 10))[speakers] + rng.normal(0, 0.3, (240, 10))
    emotion = np.eye(4)[y] + rng.normal(size=(240, 4))
    X = np.hstack([fingerprint, emotion, rng.normal(size=(240, 10))])
    settings = dict(classifier=centroid(), budget=300, n_zebras=10, n_splits=4, start_with_all=False, min_gain=None,
                    random_state=0)
    grouped = ZebraFeatureSelector(**settings).fit(X, y, groups=speakers)
    ungrouped = ZebraFeatureSelector(**settings).fit(X, y)
    assert grouped.support_[:10].sum() + 3 <= ungrouped.support_[:10].sum()
    assert grouped.support_[10:14].sum() >= 3
    assert grouped.cv_score_ + 0.1 < ungrouped.cv_score_  # clip-level CV is optimistic


def test_feature_group_rules():
    names = ["audio__mfcc_3_delta_mean", "audio__mfcc_3_delta_std", "audio__mfcc_4_mean", "audio__loudnessPeaks",
             "audio__F0_sma3nz_amean", "audio__F0_sma3nz_stddevNorm", "video__hog_2_mean", "x7"]
    by_column = feature_groups(names, "column")
    assert [(g, list(c)) for g, c in by_column] == [
        ("audio__mfcc_3_delta", [0, 1]), ("audio__mfcc_4", [2]), ("audio__loudnessPeaks", [3]),
        ("audio__F0_sma3nz", [4, 5]), ("video__hog_2", [6]), ("x7", [7])]
    by_statistic = dict(feature_groups(names, "statistic"))
    assert list(by_statistic["audio__mfcc_*_mean"]) == [0, 2] and list(by_statistic["video__hog_*_mean"]) == [6]
    assert len(feature_groups(names, "single")) == len(names)
    explicit = feature_groups(names, [("prosody", ["audio__F0_sma3nz_amean", 3]), ("face", [6])])
    assert [(g, list(c)) for g, c in explicit] == [("prosody", [4, 3]), ("face", [6])]
    with pytest.raises(ValueError, match="unknown feature 'nope'"):
        feature_groups(names, [("bad", ["nope"])])
    with pytest.raises(ValueError, match="must be one of"):
        feature_groups(names, "family")


def test_reports_selected_features_by_name():
    X, y, speakers, informative = hidden_informative(n_speakers=8, n_features=60, n_informative=4)
    names = [f"noise{j}" for j in range(60)]
    for j in informative:
        names[j] = f"informative{j}"
    zebra = ZebraFeatureSelector(classifier=centroid(), budget=200, random_state=0)
    zebra.fit(pd.DataFrame(X, columns=names), y, groups=speakers)
    kept = list(zebra.get_feature_names_out())
    assert kept == [n for n, keep in zip(names, zebra.support_) if keep] == zebra.selected_groups_
    assert sum(n.startswith("informative") for n in kept) >= 3
    assert list(zebra.feature_names_in_) == names


@pytest.mark.parametrize("params, message", [
    (dict(alpha=1.0), r"alpha must be in \[0, 1\)"),
    (dict(transfer="v"), "transfer must be one of"),
])
def test_bad_parameters(params, message):
    X, y, _, _ = hidden_informative(n_speakers=4, n_features=10)
    with pytest.raises(ValueError, match=message):
        ZebraFeatureSelector(**params).fit(X, y)
