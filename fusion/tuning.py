"""What the tuned fusion steps share: inner folds over the training speakers and the
downstream classifier whose cross-validated balanced accuracy they maximise."""

import numpy as np
from sklearn.base import clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils import _safe_indexing


def inner_folds(y, groups, n_splits, rng):
    """Inner cross-validation folds of a training set.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Class indices (0 .. k-1).
    groups : array-like [shape=(n,)] or None
        Speakers: ``GroupKFold`` over them when there are at least two, so that no inner
        fold tests a speaker it trained on; else stratified folds of clips.
    n_splits : int
        Folds, capped by the number of speakers (or, stratified, by the smallest class,
        and at least 2).
    rng : np.random.RandomState
        Seeds the stratified shuffle.

    Returns
    -------
    folds : list of (np.ndarray, np.ndarray)
        Training and test row indices of each fold.
    """
    if groups is not None and len(np.unique(groups)) >= 2:
        return list(GroupKFold(n_splits=min(n_splits, len(np.unique(groups)))).split(y, y, groups))
    n_splits = max(2, min(n_splits, np.bincount(y).min()))
    seed = rng.randint(np.iinfo(np.int32).max)
    return list(StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(y, y))


def resolve_classifier(classifier, random_state):
    """An unfitted classifier: ``classifier`` itself, or the one registered under that name
    in ``classify.classifiers`` (``"logreg"``, ``"svm"``...), seeded with ``random_state``
    (an int, else 0)."""
    if isinstance(classifier, str):
        from classify.classifiers import make_classifier  # lazily: classify is the next stage

        seed = random_state if isinstance(random_state, (int, np.integer)) else 0
        return make_classifier(classifier, random_state=int(seed))
    return classifier


def cross_validated_predictions(estimator, X, y, folds):
    """Predictions [shape=(n,)] of ``estimator`` (cloned per fold) for the test rows of each of
    ``folds``, pooled; ``X`` an array or a DataFrame."""
    predicted = np.empty_like(y)
    for train, test in folds:
        model = clone(estimator).fit(_safe_indexing(X, train), y[train])
        predicted[test] = model.predict(_safe_indexing(X, test))
    return predicted


def cross_validated_accuracy(estimator, X, y, folds):
    """Balanced accuracy of ``estimator`` (cloned per fold) on predictions pooled over ``folds``;
    ``X`` an array or a DataFrame."""
    return balanced_accuracy_score(y, cross_validated_predictions(estimator, X, y, folds))
