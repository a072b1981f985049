"""Stacking per feature family: one classifier per family, its regularisation chosen inside the
training speakers, and their out-of-fold class log-probabilities as the fused features."""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import ParameterGrid
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .mfa import name_blocks
from .tuning import inner_folds, resolve_classifier
from .zebra import feature_groups

COMBINATIONS = ("mean", "concat")

PROBABILITY_FLOOR = 1e-6
"""Smallest probability whose logarithm is taken (log 1e-6 = -13.8)."""


class FamilyStacking(TransformerMixin, BaseEstimator):
    """Late fusion of feature families by stacking (Wolpert 1992), fitted on the training
    speakers only.

    ``fit`` (on the training data):

    1. Inner folds over the training speakers (``GroupKFold`` over ``groups``, else
       stratified).
    2. Per family, for every setting of ``param_grid``: the family's classifier is fitted in
       each inner fold and predicts its held-out speakers; the setting whose pooled
       out-of-fold predictions have the highest balanced accuracy is kept, with its
       out-of-fold class probabilities; then it is refitted on all training rows.
    3. Output: the class log-probabilities of every family (``combine="concat"``,
       n_families x n_classes columns, for a meta-classifier that follows) or their mean
       over families (``combine="mean"``, n_classes columns: the product rule of late fusion,
       Kittler et al. 1998).

    ``fit_transform`` returns the *out-of-fold* log-probabilities of the training rows, so the
    classifier that follows learns from predictions for speakers the family classifiers had
    not seen, as it will meet them on test speakers (``transform`` uses the refitted
    classifiers).  This is how stacking is done (scikit-learn's ``StackingClassifier``);
    ``fit_transform(X)`` therefore differs from ``fit(X).transform(X)``.

    Parameters
    ----------
    families : "block", {"column", "statistic", "single"} or list of (str, list)
        The families: ``"block"``, one per ``<block>__`` name prefix (a modality, as
        ``BlockConcat`` names its outputs: per-modality late fusion); a naming rule or the
        explicit groups of ``fusion.zebra.feature_groups`` (column indices or feature names).
    classifier : str or scikit-learn classifier
        The family classifier: a name registered in ``classify.classifiers`` or an estimator
        with ``predict_proba``, cloned for every fit.
    param_grid : dict
        Settings searched per family (``sklearn.model_selection.ParameterGrid``).  The
        default searches the inverse L2 penalty of the registered logistic regression over a
        log grid; the papers stack fixed classifiers, the field chooses the penalty on
        held-out data, here the training speakers' inner folds.
    n_splits : int
        Inner folds (capped by the number of speakers).
    combine : {"mean", "concat"}
        How the families' log-probabilities are output (step 3).
    random_state : int, RandomState or None

    Attributes
    ----------
    families_ : list of (str, np.ndarray)
        Family names and their column indices.
    estimators_ : list of estimators
        Each family's classifier, refitted on all training rows with its chosen setting.
    best_params_ : dict
        Family name -> chosen setting.
    inner_scores_ : dict
        Family name -> inner balanced accuracy of the chosen setting.
    classes_ : np.ndarray
        Class labels seen in ``fit``.

    References
    ----------
    D. H. Wolpert, "Stacked generalization", Neural Networks 5(2), 1992.
    J. Kittler, M. Hatef, R. P. W. Duin, J. Matas, "On combining classifiers", IEEE TPAMI
    20(3), 1998.
    """

    def __init__(self, families="block", classifier="logreg", param_grid=None, n_splits=4, combine="mean",
                 random_state=None):
        self.families = families
        self.classifier = classifier
        self.param_grid = param_grid
        self.n_splits = n_splits
        self.combine = combine
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Fit the family classifiers on ``X`` [shape=(n_samples, n_features)] and ``y``, their
        settings chosen by inner folds over ``groups`` [shape=(n_samples,)] (speakers)."""
        self._fit(X, y, groups)
        return self

    def fit_transform(self, X, y, groups=None):
        """Fit, and return the out-of-fold log-probabilities of the training rows
        [shape=(n_samples, n_features_out)]."""
        return self._combined(self._fit(X, y, groups))

    def transform(self, X):
        """Log-probabilities of the refitted family classifiers [shape=(n_samples, n_features_out)]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._combined([self._log_proba(model, X[:, columns])
                               for model, (_, columns) in zip(self.estimators_, self.families_)])

    def get_feature_names_out(self, input_features=None):
        """``logp_<class>`` (mean) or ``<family>__logp_<class>`` (concat)."""
        check_is_fitted(self)
        classes = [f"logp_{c}" for c in self.classes_]
        if self.combine == "mean":
            return np.asarray(classes, dtype=object)
        return np.asarray([f"{name}__{c}" for name, _ in self.families_ for c in classes], dtype=object)

    def _fit(self, X, y, groups):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if self.combine not in COMBINATIONS:
            raise ValueError(f"combine must be one of {COMBINATIONS}, got {self.combine!r}")
        self.classes_, codes = np.unique(y, return_inverse=True)
        rng = check_random_state(self.random_state)
        names = getattr(self, "feature_names_in_", None)
        if isinstance(self.families, str) and self.families == "block":
            prefixes = [] if names is None else [str(n).partition("__")[0] for n in names]
            self.families_ = [(prefixes[c[0]] if prefixes else "all", c) for c in name_blocks(names, X.shape[1])]
        else:
            self.families_ = feature_groups(names if names is not None else [f"x{j}" for j in range(X.shape[1])],
                                            self.families)
        folds = inner_folds(codes, groups, self.n_splits, rng)
        classifier = resolve_classifier(self.classifier, self.random_state)
        grid = ParameterGrid(self.param_grid if self.param_grid is not None else {"classifier__C": [0.1, 0.01, 0.001]})
        self.estimators_, self.best_params_, self.inner_scores_, out_of_fold = [], {}, {}, []
        for name, columns in self.families_:
            best = None
            for params in grid:
                model = clone(classifier).set_params(**params)
                log_proba = np.empty((len(codes), len(self.classes_)))
                for train, test in folds:
                    fitted = clone(model).fit(X[np.ix_(train, columns)], codes[train])
                    log_proba[test] = self._log_proba(fitted, X[np.ix_(test, columns)])
                score = balanced_accuracy_score(codes, log_proba.argmax(axis=1))
                if best is None or score > best[0]:
                    best = (score, params, model, log_proba)
            score, params, model, log_proba = best
            self.estimators_.append(model.fit(X[:, columns], codes))
            self.best_params_[name], self.inner_scores_[name] = params, float(score)
            out_of_fold.append(log_proba)
        return out_of_fold

    def _log_proba(self, model, X):
        """Log-probabilities over all classes [shape=(n, n_classes)]; a class the model never
        saw gets the floor."""
        proba = np.full((len(X), len(self.classes_)), PROBABILITY_FLOOR)
        proba[:, model.classes_] = model.predict_proba(X)
        return np.log(np.clip(proba, PROBABILITY_FLOOR, 1.0))

    def _combined(self, log_probas):
        if self.combine == "mean":
            return np.mean(log_probas, axis=0)
        return np.hstack(log_probas)
