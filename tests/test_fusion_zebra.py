"""Zebra Optimisation Algorithm feature selection."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score
from sklearn.neighbors import NearestCentroid
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from fusion.zebra import ZebraFeatureSelector


# A small population and few iterations keep the ~50 checks fast; they test the API, not the search.
@parametrize_with_checks([
    ZebraFeatureSelector(n_zebras=6, n_iter=4),
    ZebraFeatureSelector(n_zebras=4, n_iter=2, max_candidates=2, transfer="sigmoid", opposition=False),
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
    model = make_pipeline(StandardScaler(), NearestCentroid()).fit(X[train][:, mask], y[train])
    return balanced_accuracy_score(y[~train], model.predict(X[~train][:, mask]))


def test_beats_random_subsets_of_the_same_size_on_unseen_speakers():
    X, y, speakers, informative = hidden_informative()
    train = speakers < 14  # 280 training clips x 1000 features
    zebra = ZebraFeatureSelector(random_state=0).fit(X[train], y[train], groups=speakers[train])
    mask = zebra.get_support()
    assert len(set(np.flatnonzero(mask)) & set(informative)) >= 6
    rng = np.random.default_rng(1)
    random_scores = [held_out_accuracy(X, y, train, rng.choice(X.shape[1], mask.sum(), replace=False))
                     for _ in range(10)]
    accuracy = held_out_accuracy(X, y, train, mask)
    assert accuracy > np.mean(random_scores) + 0.2 and accuracy > max(random_scores)
    assert zebra.transform(X).shape == (len(X), mask.sum())
    assert set(np.flatnonzero(mask)) <= set(zebra.candidates_) and len(zebra.candidates_) == 200


def test_is_deterministic_for_a_seed_and_the_search_never_worsens():
    X, y, speakers, _ = hidden_informative(n_speakers=8, n_features=120)
    fits = [ZebraFeatureSelector(n_iter=10, random_state=7).fit(X, y, groups=speakers) for _ in range(2)]
    np.testing.assert_array_equal(fits[0].support_, fits[1].support_)
    history = fits[0].fitness_history_
    assert len(history) == 11 and np.all(np.diff(history) <= 0) and history[-1] < history[0]
    expected_final = 0.99 * fits[0].cv_error_ + 0.01 * fits[0].support_.sum() / len(fits[0].candidates_)
    assert np.isclose(history[-1], expected_final)


def test_opposition_start_keeps_the_better_of_a_mask_and_its_complement():
    X, y, speakers, _ = hidden_informative(n_speakers=8, n_features=40)
    complements = 0
    for seed in range(10):
        settings = dict(n_zebras=1, n_iter=0, max_candidates=None, alpha=0.3, random_state=seed)
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
    grouped = ZebraFeatureSelector(random_state=0).fit(X, y, groups=speakers)
    ungrouped = ZebraFeatureSelector(random_state=0).fit(X, y)
    assert grouped.support_[:10].sum() + 3 <= ungrouped.support_[:10].sum()
    assert grouped.support_[10:14].sum() >= 3
    assert grouped.cv_error_ > ungrouped.cv_error_ + 0.1  # clip-level CV is optimistic


def test_reports_selected_features_by_name():
    X, y, speakers, informative = hidden_informative(n_speakers=8, n_features=60, n_informative=4)
    names = [f"noise_{j}" for j in range(60)]
    for j in informative:
        names[j] = f"informative_{j}"
    zebra = ZebraFeatureSelector(random_state=0).fit(pd.DataFrame(X, columns=names), y, groups=speakers)
    kept = list(zebra.get_feature_names_out())
    assert kept == [n for n, keep in zip(names, zebra.support_) if keep]
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
