"""Wrapper feature selection with the Zebra Optimisation Algorithm (ZOA).

Each zebra is a position in [0, 1]^D; a transfer function turns it into a feature mask, and
its fitness is the speaker-grouped cross-validated error of a nearest-centroid classifier on
the selected features plus a small penalty on their number.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.model_selection import GroupKFold, StratifiedKFold
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data


class ZebraFeatureSelector(SelectorMixin, BaseEstimator):
    """Select features with the Zebra Optimisation Algorithm (binary ZOA, wrapper fitness).

    ``fit`` runs, on the training data only:

    0. Optional pre-filter: keep the ``max_candidates`` features of highest ANOVA F score
       (``sklearn.feature_selection.f_classif``) as the search space, so that the search
       stays fast and small on ~1000 features.  Features outside it are never selected.
    1. Initial population of ``n_zebras`` positions uniform in [0, 1]^D; with
       ``opposition=True`` (improvement: opposition-based start, Tizhoosh 2005) their
       opposites ``1 - x`` (the complementary masks) are evaluated too and the best
       ``n_zebras`` of both kept.
    2. For ``n_iter`` iterations, the two ZOA phases, each applied to the whole population
       at once (the pioneer is fixed during a phase) with greedy acceptance:
       foraging, ``x' = x + r * (PZ - I x)``, toward the pioneer zebra PZ (the best);
       defence, with probability 1/2 each, escaping a lion,
       ``x' = x + R (2r - 1)(1 - t/T) x`` with R = 0.01, or closing ranks,
       ``x' = x + r * (AZ - I x)`` toward a randomly chosen zebra AZ;
       r ~ U(0, 1)^D, I drawn from {1, 2}.  Positions are clipped to [0, 1].  With I = 2
       a move shrinks positions toward 0, i.e. toward fewer features.
    3. Transfer to binary: ``"step"``, feature j is selected when ``x_j > 0.5``;
       ``"sigmoid"`` (S-shaped, stochastic), with probability
       ``1 / (1 + exp(-10 (x_j - 0.5)))``.  An empty mask gets the feature of highest
       position.
    4. Fitness ``(1 - alpha) * error + alpha * n_selected / D`` with ``error`` one minus the
       balanced accuracy (mean per-class recall) of a nearest-centroid classifier on the
       standardised selected features, pooled over an inner cross-validation:
       ``GroupKFold`` over ``groups`` (the training speakers) when given, else stratified.

    The best mask ever seen is kept (greedy acceptance makes the pioneer's fitness
    non-increasing).  Deterministic for an integer ``random_state``.  The pre-filter saw
    every training label, so the inner error of its candidates is somewhat optimistic; the
    outer, speaker-independent test is not affected.

    Parameters
    ----------
    n_zebras : int
        Population size N.
    n_iter : int
        Iterations T.
    alpha : float
        Weight of the number-of-features penalty, in [0, 1).
    n_splits : int
        Inner cross-validation folds (capped by the number of groups or class sizes).
    max_candidates : int or None
        Size of the univariate pre-filter (step 0); None searches all features.
    opposition : bool
        Opposition-based initial population (step 1).
    transfer : {"step", "sigmoid"}
        Transfer function from positions to masks (step 3).
    random_state : int, RandomState or None

    Attributes
    ----------
    support_ : np.ndarray [shape=(n_features,), dtype=bool]
        The selected features.
    candidates_ : np.ndarray [shape=(n_candidates,), dtype=int]
        Indices of the features the search ran over (the pre-filter's choice).
    fitness_history_ : np.ndarray [shape=(n_iter + 1,)]
        Best fitness after initialisation and after each iteration (non-increasing).
    cv_error_ : float
        Inner cross-validated balanced error of the selected features.
    classes_ : np.ndarray
        Class labels seen in ``fit``.

    References
    ----------
    E. Trojovska, M. Dehghani, P. Trojovsky, "Zebra Optimization Algorithm: A New
    Bio-Inspired Optimization Algorithm for Solving Optimization Algorithms",
    IEEE Access 10, 2022.
    H. R. Tizhoosh, "Opposition-Based Learning: A New Scheme for Machine Intelligence",
    CIMCA 2005.
    """

    def __init__(
        self,
        n_zebras=20,
        n_iter=30,
        alpha=0.01,
        n_splits=4,
        max_candidates=200,
        opposition=True,
        transfer="step",
        random_state=None,
    ):
        self.n_zebras = n_zebras
        self.n_iter = n_iter
        self.alpha = alpha
        self.n_splits = n_splits
        self.max_candidates = max_candidates
        self.opposition = opposition
        self.transfer = transfer
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Search a feature mask on ``X`` [shape=(n_samples, n_features)], labels ``y`` and
        optional ``groups`` [shape=(n_samples,)] (speakers) for the inner cross-validation."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"zebra selection needs at least 2 classes; got {len(self.classes_)} class")
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if self.transfer not in _TRANSFERS:
            raise ValueError(f"transfer must be one of {sorted(_TRANSFERS)}, got {self.transfer!r}")
        rng = check_random_state(self.random_state)
        # 0. Univariate pre-filter of the search space.
        self.candidates_ = self._prefilter(X, y)
        fitness = _CentroidFitness(X[:, self.candidates_], y, groups, self.n_splits, self.alpha, rng)
        # 1-4. Binary ZOA.
        best_mask, history = self._search(fitness, len(self.candidates_), rng)
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[self.candidates_[best_mask]] = True
        self.fitness_history_ = history
        self.cv_error_ = float(fitness.errors(best_mask[None])[0])
        return self

    def _get_support_mask(self):
        check_is_fitted(self)
        return self.support_

    def _prefilter(self, X, y):
        if self.max_candidates is None or self.max_candidates >= X.shape[1]:
            return np.arange(X.shape[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.nan_to_num(f_classif(X, y)[0], nan=0.0, posinf=np.finfo(float).max)
        return np.sort(np.argsort(-scores, kind="stable")[: self.max_candidates])

    def _search(self, fitness, n_dims, rng):
        n, transfer = self.n_zebras, _TRANSFERS[self.transfer]
        positions = rng.random_sample((n, n_dims))
        masks = transfer(positions, rng)
        scores = fitness(masks)
        if self.opposition:
            opposite = 1 - positions  # lb + ub - x
            opposite_masks = transfer(opposite, rng)
            pooled = np.concatenate([scores, fitness(opposite_masks)])
            keep = np.argsort(pooled, kind="stable")[:n]
            positions = np.concatenate([positions, opposite])[keep]
            masks = np.concatenate([masks, opposite_masks])[keep]
            scores = pooled[keep]
        history = [scores.min()]
        for t in range(1, self.n_iter + 1):
            # Phase 1, foraging: move toward the pioneer zebra.
            pioneer = positions[scores.argmin()]
            step = rng.random_sample((n, n_dims)) * (pioneer - rng.randint(1, 3, (n, 1)) * positions)
            positions, masks, scores = _accept(positions, masks, scores, positions + step, fitness, transfer, rng)
            # Phase 2, defence: escape a lion (small shrinking move) or close ranks toward an
            # attacked zebra.
            r = rng.random_sample((n, n_dims))
            escape = 0.01 * (2 * r - 1) * (1 - t / self.n_iter) * positions
            attacked = positions[rng.randint(0, n, n)]
            close_ranks = r * (attacked - rng.randint(1, 3, (n, 1)) * positions)
            step = np.where(rng.random_sample((n, 1)) < 0.5, escape, close_ranks)
            positions, masks, scores = _accept(positions, masks, scores, positions + step, fitness, transfer, rng)
            history.append(scores.min())
        return masks[scores.argmin()], np.asarray(history)


def _never_empty(masks, positions):
    empty = ~masks.any(axis=1)
    masks[empty, positions[empty].argmax(axis=1)] = True
    return masks


def _step_transfer(positions, rng):
    """Select feature j when x_j > 0.5."""
    return _never_empty(positions > 0.5, positions)


def _sigmoid_transfer(positions, rng):
    """Select feature j with probability 1 / (1 + exp(-10 (x_j - 0.5)))."""
    return _never_empty(rng.random_sample(positions.shape) < 1 / (1 + np.exp(-10 * (positions - 0.5))), positions)


_TRANSFERS = {"step": _step_transfer, "sigmoid": _sigmoid_transfer}


def _accept(positions, masks, scores, candidates, fitness, transfer, rng):
    """Greedy acceptance: a zebra moves only if its new mask has a lower fitness."""
    candidates = np.clip(candidates, 0, 1)
    candidate_masks = transfer(candidates, rng)
    candidate_scores = fitness(candidate_masks)
    better = candidate_scores < scores
    return (
        np.where(better[:, None], candidates, positions),
        np.where(better[:, None], candidate_masks, masks),
        np.where(better, candidate_scores, scores),
    )


class _CentroidFitness:
    """Wrapper fitness of many masks at once: cross-validated nearest-centroid error.

    Everything that does not depend on the mask is computed once: for every sample, the
    squared standardised difference to each class centroid of the inner fold that tests
    it, Q [shape=(n, k, D)].  A mask m then gives the distances ``Q @ m`` in one product.
    """

    def __init__(self, X, y, groups, n_splits, alpha, rng):
        n, n_dims = X.shape
        n_classes = y.max() + 1
        self.y, self.alpha, self.n_dims = y, alpha, n_dims
        self.class_weights = np.eye(n_classes)[y].T / np.bincount(y)[:, None]  # (k, n) mean per class
        self.Q = np.empty((n, n_classes, n_dims), dtype=np.float32)
        self.absent = np.zeros((n, n_classes))  # +inf where the inner training lacks a class
        for train, test in _inner_folds(y, groups, n_splits, rng):
            std = X[train].std(axis=0)
            std[std < 1e-12] = 1.0
            counts = np.bincount(y[train], minlength=n_classes)
            centroids = np.zeros((n_classes, n_dims))
            np.add.at(centroids, y[train], X[train])
            centroids /= np.maximum(counts, 1)[:, None]
            self.Q[test] = ((X[test, None, :] - centroids[None]) / std) ** 2
            self.absent[np.ix_(test, counts == 0)] = np.inf

    def errors(self, masks):
        """Balanced cross-validated error of each mask [shape=(n_masks, D)] -> (n_masks,)."""
        n, k, d = self.Q.shape
        distances = (self.Q.reshape(n * k, d) @ masks.T.astype(np.float32)).reshape(n, k, -1)
        predicted = (distances + self.absent[:, :, None]).argmin(axis=1)
        recall = self.class_weights @ (predicted == self.y[:, None])
        return 1.0 - recall.mean(axis=0)

    def __call__(self, masks):
        """Fitness ``(1 - alpha) error + alpha |m| / D`` of each mask."""
        return (1 - self.alpha) * self.errors(masks) + self.alpha * masks.sum(axis=1) / self.n_dims


def _inner_folds(y, groups, n_splits, rng):
    if groups is not None and len(np.unique(groups)) >= 2:
        return GroupKFold(n_splits=min(n_splits, len(np.unique(groups)))).split(y, y, groups)
    n_splits = max(2, min(n_splits, np.bincount(y).min()))
    seed = rng.randint(np.iinfo(np.int32).max)
    return StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(y, y)
