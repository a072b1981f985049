"""Hyper-parameter tuning by MGO inside the training speakers."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.neural_network import MLPClassifier
from sklearn.neighbors import KNeighborsClassifier

from classify.tuning import Hyperparameter, MountainGazelleSearchCV, tune_hyperparameters
from extract.errors import EmofuseError


def speakers_problem(n_speakers=6, per_speaker=30, seed=0):
    """Two classes separated on feature 0; column 1 holds the speaker id (no information)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_speakers), per_speaker)
    y = rng.integers(0, 2, len(groups))
    X = np.column_stack([(2 * y - 1) * 2.0 + rng.normal(size=len(y)), groups, rng.normal(size=(len(y), 3))])
    return X, np.array(["calm", "angry"])[y], groups


class SpeakerSpy(ClassifierMixin, BaseEstimator):
    """Predicts the majority class, and records which speakers it was fitted on and asked about."""

    log = []

    def __init__(self, alpha=1.0):
        self.alpha = alpha

    def fit(self, X, y):
        self.classes_, counts = np.unique(y, return_counts=True)
        self.speakers_ = set(X[:, 1].astype(int))
        return self

    def predict(self, X):
        SpeakerSpy.log.append((self.speakers_, set(X[:, 1].astype(int))))
        return np.full(len(X), self.classes_[0])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_learning_rate_is_chosen_on_a_log_scale():
    X, y, groups = speakers_problem()
    # Ten epochs of plain SGD barely move the initial weights at a step of 1e-6: chance.
    mlp = MLPClassifier(hidden_layer_sizes=(8,), solver="sgd", momentum=0.0, max_iter=10, random_state=0)
    space = [Hyperparameter("learning_rate_init", 1e-6, 1.0, "log")]
    result = tune_hyperparameters(mlp, X, y, groups, space, max_evaluations=20, population=4)
    assert set(result.params) == {"learning_rate_init"}
    assert 1e-3 < result.params["learning_rate_init"] <= 1.0
    assert result.score > 0.9
    assert result.n_evaluations == 20
    scores = dict((trial["learning_rate_init"], score) for trial, score in result.trials)
    assert result.score == max(scores.values())
    assert scores[min(scores)] < 0.7  # the smallest step tried
    again = tune_hyperparameters(mlp, X, y, groups, space, max_evaluations=20, population=4)
    assert again.params == result.params


def test_integer_hyperparameters_are_rounded():
    X, y, groups = speakers_problem()
    space = [Hyperparameter("n_neighbors", 1, 15, "int")]
    result = tune_hyperparameters(KNeighborsClassifier(), X, y, groups, space, max_evaluations=15, population=3)
    assert isinstance(result.params["n_neighbors"], int) and 1 <= result.params["n_neighbors"] <= 15


def test_inner_folds_never_share_a_speaker():
    X, y, groups = speakers_problem()
    SpeakerSpy.log.clear()
    tune_hyperparameters(SpeakerSpy(), X, y, groups, [Hyperparameter("alpha", 0.1, 10.0)],
                         n_splits=3, max_evaluations=15, population=3)
    assert SpeakerSpy.log
    for fitted_on, asked_about in SpeakerSpy.log:
        assert not fitted_on & asked_about
        assert fitted_on | asked_about == set(range(6))


def test_search_cv_refits_on_all_training_data_with_the_chosen_values():
    X, y, groups = speakers_problem()
    model = MountainGazelleSearchCV(KNeighborsClassifier(), [Hyperparameter("n_neighbors", 1, 15, "int")],
                                    max_evaluations=15, population=3).fit(X, y, groups=groups)
    assert model.best_estimator_.n_neighbors == model.best_params_["n_neighbors"]
    assert model.best_estimator_.n_samples_fit_ == len(X)
    X_test, y_test, _ = speakers_problem(seed=1)
    assert np.mean(model.predict(X_test) == y_test) > 0.9
    np.testing.assert_allclose(model.predict_proba(X_test).sum(axis=1), 1.0)
    with pytest.raises(EmofuseError, match="groups="):
        model.fit(X, y)


@pytest.mark.parametrize("make", [
    lambda: Hyperparameter("learning_rate", 0.0, 1.0, "log"),
    lambda: Hyperparameter("learning_rate", 1.0, 0.1, "linear"),
    lambda: Hyperparameter("learning_rate", 0.1, 1.0, "cubic"),
])
def test_bad_ranges_are_refused(make):
    with pytest.raises(EmofuseError, match="learning_rate"):
        make()


def test_one_speaker_is_refused():
    X, y, groups = speakers_problem()
    with pytest.raises(EmofuseError, match="at least 2 speakers"):
        tune_hyperparameters(KNeighborsClassifier(), X, y, np.zeros(len(y)),
                             [Hyperparameter("n_neighbors", 1, 5, "int")], max_evaluations=15, population=3)


class ColumnPicker(ClassifierMixin, BaseEstimator):
    """Takes ``(features, texts)``; predicts by the sign of feature ``column``, and records the
    rows (ids in each text) it was fitted on and asked about."""

    log = []

    def __init__(self, column=0):
        self.column = column

    def fit(self, X, y):
        features, texts = X
        assert len(features) == len(texts) == len(y)
        self.classes_ = np.unique(y)
        self.rows_ = {int(t.split()[-1]) for t in texts}
        assert self.rows_ == set(features[:, -1].astype(int))  # the parts were sliced alike
        return self

    def predict(self, X):
        features, texts = X
        ColumnPicker.log.append((self.rows_, {int(t.split()[-1]) for t in texts}))
        return self.classes_[(features[:, self.column] > 0).astype(int)]


def tuple_problem(n_speakers=4, per_speaker=10, seed=0):
    """Tuple input ``(features, texts)``: only feature 2 of 0-4 carries the class; the last
    column and each text hold the row number.  Every speaker has both classes."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_speakers), per_speaker)
    y = np.tile([0, 1], len(groups) // 2)
    features = rng.normal(size=(len(y), 6))
    features[:, 2] = (2 * y - 1) * (1.0 + rng.random(len(y)))
    features[:, 5] = np.arange(len(y))
    texts = [f"utterance {i}" for i in range(len(y))]
    return (features, texts), y, groups


def test_tuple_inputs_are_tuned_with_rows_of_every_part_taken_alike():
    X, y, groups = tuple_problem()
    ColumnPicker.log.clear()
    result = tune_hyperparameters(ColumnPicker(), X, y, groups, [Hyperparameter("column", 0, 4, "int")],
                                  n_splits=4, max_evaluations=15, population=3)
    assert result.params == {"column": 2} and result.score == 1.0
    assert ColumnPicker.log
    rows_of = {s: set(np.flatnonzero(groups == s)) for s in range(4)}
    for fitted_on, asked_about in ColumnPicker.log:
        assert asked_about in rows_of.values()  # one held-out speaker per inner fold
        assert fitted_on == set(range(len(y))) - asked_about  # only, and all, the other speakers' rows
    model = MountainGazelleSearchCV(ColumnPicker(), [Hyperparameter("column", 0, 4, "int")], n_splits=4,
                                    max_evaluations=15, population=3).fit(X, y, groups=groups)
    assert model.best_params_ == {"column": 2} and model.best_estimator_.rows_ == set(range(len(y)))
    np.testing.assert_array_equal(model.predict(X), y)


def test_tuple_parts_of_different_lengths_are_refused():
    (features, texts), y, groups = tuple_problem()
    with pytest.raises(EmofuseError, match="different numbers of samples: \\[40, 39\\]"):
        tune_hyperparameters(ColumnPicker(), (features, texts[:-1]), y, groups,
                             [Hyperparameter("column", 0, 4, "int")], max_evaluations=15, population=3)
