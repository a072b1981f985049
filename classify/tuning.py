"""Hyper-parameters chosen by the Mountain Gazelle Optimiser inside the training speakers.

`tune_hyperparameters` searches a box of hyper-parameters of any emofuse classifier (a
scikit-learn estimator, a Pipeline or a torch network taking vectors or frame sequences);
each candidate's fitness is its speaker-grouped inner cross-validated balanced error on the
training data it is given, so nothing about the outer test speakers is seen.
`MountainGazelleSearchCV` wraps it as an estimator that tunes, then refits on all of its
training data, for use as an emofuse classifier whose ``fit`` takes ``groups=``.
"""

import dataclasses
import math

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted

from extract.errors import EmofuseError

from .mgo import mountain_gazelle

__all__ = ["Hyperparameter", "TuningResult", "tune_hyperparameters", "MountainGazelleSearchCV"]

SCALES = ("log", "linear", "int")


@dataclasses.dataclass(frozen=True)
class Hyperparameter:
    """One searched hyper-parameter and its range.

    Attributes
    ----------
    name : str
        Its ``set_params`` name, e.g. ``learning_rate`` or ``classifier__C``.
    low, high : float
        Range, ``low < high`` (both > 0 on a log scale).
    scale : {"log", "linear", "int"}
        ``log`` searches ``log10`` of the value (learning rates, penalties); ``int`` rounds.
    """

    name: str
    low: float
    high: float
    scale: str = "log"

    def __post_init__(self):
        if self.scale not in SCALES or not self.low < self.high or (self.scale == "log" and self.low <= 0):
            raise EmofuseError(
                f"hyper-parameter {self.name!r}: need low < high (> 0 on a log scale) and a scale "
                f"in {SCALES}, got low={self.low}, high={self.high}, scale={self.scale!r}"
            )

    def bounds(self):
        """The search interval: ``log10`` of the range on a log scale, else the range."""
        return (math.log10(self.low), math.log10(self.high)) if self.scale == "log" else (self.low, self.high)

    def value(self, coordinate):
        """The hyper-parameter value at a search coordinate."""
        if self.scale == "log":
            return float(10.0**coordinate)
        return int(round(coordinate)) if self.scale == "int" else float(coordinate)


@dataclasses.dataclass(frozen=True)
class TuningResult:
    """What `tune_hyperparameters` chose.

    Attributes
    ----------
    params : dict
        The chosen values, by name.
    score : float
        Their inner cross-validated balanced accuracy (mean over inner folds).
    n_evaluations : int
        Candidates the optimiser asked for (repeats after rounding are scored once).
    trials : list of (dict, float)
        Every distinct candidate scored, with its score, in order.
    """

    params: dict
    score: float
    n_evaluations: int
    trials: list


def tune_hyperparameters(estimator, X, y, groups, space, *, n_splits=3, max_evaluations=20,
                         population=4, random_state=0):
    """Choose hyper-parameters of ``estimator`` by MGO over speaker-grouped inner folds.

    Each candidate is scored by ``GroupKFold(n_splits)`` over ``groups`` (the training
    speakers): the estimator, cloned with the candidate's values, is fitted on the other
    speakers and scored by balanced accuracy on the held-out ones; the fitness is one minus
    the mean.  Cost: ``max_evaluations * n_splits`` fits at most (the smallest budget is
    ``5 * population``: the first herd and one iteration of 4 candidates per gazelle).

    Parameters
    ----------
    estimator : scikit-learn classifier
        Unfitted; its ``random_state``, if any, makes every fit deterministic.
    X : np.ndarray [shape=(n, d)], list of n samples, or tuple of such parts
        Training inputs (for sequence classifiers, a list of (t_i, d) arrays; for classifiers
        of several inputs, a tuple of parts over the same n samples, e.g. ``(images, texts)``);
        folds take rows of every part alike (`take_rows`).
    y : array-like [shape=(n,)]
        Labels.
    groups : array-like [shape=(n,)]
        Speaker of each sample; at least two speakers.
    space : sequence of Hyperparameter
        The searched hyper-parameters.
    n_splits : int
        Inner folds (capped by the number of speakers).
    max_evaluations, population : int
        MGO's budget and herd size.
    random_state : int
        Seed of the optimiser.

    Returns
    -------
    TuningResult
    """
    y, groups = np.asarray(y), np.asarray(groups)
    n_speakers, n_samples = len(np.unique(groups)), count_rows(X)
    if n_speakers < 2 or len(groups) != len(y) or len(y) != n_samples:
        raise EmofuseError(
            f"tune_hyperparameters needs one speaker per sample and at least 2 speakers, got "
            f"{n_samples} samples, {len(y)} labels, {len(groups)} groups from {n_speakers} speakers"
        )
    if not space:
        raise EmofuseError("tune_hyperparameters: the search space is empty")
    folds = list(GroupKFold(n_splits=min(n_splits, n_speakers)).split(np.zeros(len(y)), y, groups))
    scores = {}

    def fitness(coordinates):
        params = {h.name: h.value(c) for h, c in zip(space, coordinates)}
        key = tuple(params.values())
        if key not in scores:
            scores[key] = float(np.mean([
                balanced_accuracy_score(y[test], clone(estimator).set_params(**params)
                                        .fit(take_rows(X, train), y[train]).predict(take_rows(X, test)))
                for train, test in folds
            ]))
        return 1.0 - scores[key]

    lower, upper = np.array([h.bounds() for h in space]).T
    result = mountain_gazelle(fitness, lower, upper, max_evaluations=max_evaluations,
                              population=population, random_state=random_state, vectorised=False)
    names = [h.name for h in space]
    best = {h.name: h.value(c) for h, c in zip(space, result.x)}
    trials = [(dict(zip(names, key)), score) for key, score in scores.items()]
    return TuningResult(best, scores[tuple(best.values())], result.n_evaluations, trials)


class MountainGazelleSearchCV(ClassifierMixin, BaseEstimator):
    """A classifier whose hyper-parameters MGO chooses inside its training speakers, then refits.

    ``fit(X, y, groups=speakers)`` runs `tune_hyperparameters` and fits a clone of
    ``estimator`` with the chosen values on all of ``X``.

    Parameters
    ----------
    estimator : scikit-learn classifier
    space : sequence of Hyperparameter
    n_splits, max_evaluations, population, random_state
        As `tune_hyperparameters`.

    Attributes
    ----------
    best_params_ : dict
        The chosen values (write them beside each fold's results).
    best_score_ : float
        Their inner cross-validated balanced accuracy.
    trials_ : list of (dict, float)
    best_estimator_ : the refitted estimator
    classes_ : np.ndarray
    """

    def __init__(self, estimator, space, *, n_splits=3, max_evaluations=20, population=4, random_state=0):
        self.estimator = estimator
        self.space = space
        self.n_splits = n_splits
        self.max_evaluations = max_evaluations
        self.population = population
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Tune on speaker-grouped inner folds of ``(X, y, groups)``, then refit on all of it."""
        if groups is None:
            raise EmofuseError(
                "MountainGazelleSearchCV.fit needs groups= (the training speakers) so that tuning "
                "stays speaker-independent"
            )
        result = tune_hyperparameters(self.estimator, X, y, groups, self.space, n_splits=self.n_splits,
                                      max_evaluations=self.max_evaluations, population=self.population,
                                      random_state=self.random_state)
        self.best_params_, self.best_score_, self.trials_ = result.params, result.score, result.trials
        self.best_estimator_ = clone(self.estimator).set_params(**result.params).fit(X, y)
        self.classes_ = self.best_estimator_.classes_
        return self

    def predict(self, X):
        """Labels from the refitted estimator."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def predict_proba(self, X):
        """Class probabilities from the refitted estimator, columns as ``classes_``."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict_proba(X)


def take_rows(X, index):
    """Rows ``index`` (integer positions) of per-sample inputs.

    ``X`` is an array (rows are samples), a list of samples (e.g. frame sequences, or tuples
    of one sequence per modality), or a tuple of such parts over the same samples (e.g.
    ``(images, texts)``), whose parts are taken alike; a None part stays None.
    """
    if X is None:
        return None
    if isinstance(X, tuple):
        return tuple(take_rows(part, index) for part in X)
    return X[index] if isinstance(X, np.ndarray) else [X[i] for i in index]


def count_rows(X) -> int:
    """The number of samples in per-sample inputs, as `take_rows` reads them.

    Raises
    ------
    EmofuseError
        A tuple whose parts hold different numbers of samples.
    """
    if not isinstance(X, tuple):
        return len(X)
    counts = [count_rows(part) for part in X if part is not None]
    if len(set(counts)) > 1:
        raise EmofuseError(f"the parts of a tuple input hold different numbers of samples: {counts}")
    return counts[0] if counts else 0
