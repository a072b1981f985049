"""Wrapper feature selection with the Zebra Optimisation Algorithm (ZOA).

Each zebra is a position in [0, 1]^D over D feature groups (all functionals of one
frame-level column, say); a transfer function turns it into a mask of groups, and its
fitness is the downstream classifier's balanced error under speaker-grouped cross-validation
on the training speakers, plus a small penalty on the share of groups kept.  The search
starts from every group as one of its zebras, and a subset replaces all groups only when its
inner gain over them exceeds one standard error of the paired per-speaker difference.
"""

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.feature_selection import SelectorMixin, f_classif
from sklearn.metrics import balanced_accuracy_score
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from .tuning import cross_validated_predictions, inner_folds, resolve_classifier

GROUP_RULES = ("column", "statistic", "single")


def feature_groups(names, rule="column"):
    """Partition feature names into the groups the zebra search selects whole.

    Names are read as ``[<block>__]<column>_<statistic>``, as emofuse's functionals
    (``mfcc_3_delta_mean``) and openSMILE's (``F0semitoneFrom27.5Hz_sma3nz_amean``) are
    written: the statistic is the last ``_``-separated token.

    Parameters
    ----------
    names : sequence of str [length=n_features]
    rule : {"column", "statistic", "single"} or sequence of (str, sequence of int or str)
        ``"column"``: every statistic of one frame-level column (``mfcc_3_delta_*``);
        ``"statistic"``: one statistic across a family (``mfcc_*_mean``, the family being the
        first token); ``"single"``: one column per group.  A name without ``_`` (``x0``, the
        names of an unlabelled array) is a group of its own.  Or the groups themselves, as
        (name, column indices or feature names).

    Returns
    -------
    groups : list of (str, np.ndarray [dtype=int])
        Group name and column indices, groups in order of their first column.

    Raises
    ------
    ValueError
        Unknown rule, or explicit groups naming unknown features or columns out of range.
    """
    names = [str(n) for n in names]
    if not isinstance(rule, str):
        position = {name: j for j, name in enumerate(names)}
        groups = []
        for group, members in rule:
            try:
                columns = [position[m] if isinstance(m, str) else int(m) for m in members]
            except KeyError as err:
                raise ValueError(f"feature group {group!r} names an unknown feature {err.args[0]!r}") from None
            if not columns or min(columns) < 0 or max(columns) >= len(names):
                raise ValueError(f"feature group {group!r} is empty or has columns outside [0, {len(names)})")
            groups.append((str(group), np.asarray(columns, dtype=int)))
        return groups
    if rule not in GROUP_RULES:
        raise ValueError(f"feature_groups must be one of {GROUP_RULES} or a list of groups, got {rule!r}")
    keys = {}
    for j, name in enumerate(names):
        block, sep, base = name.rpartition("__")
        if rule == "single" or "_" not in base:
            key = name
        elif rule == "column":
            key = block + sep + base.rsplit("_", 1)[0]
        else:
            key = f"{block}{sep}{base.split('_', 1)[0]}_*_{base.rsplit('_', 1)[1]}"
        keys.setdefault(key, []).append(j)
    return [(key, np.asarray(columns, dtype=int)) for key, columns in keys.items()]


class ZebraFeatureSelector(SelectorMixin, BaseEstimator):
    """Select feature groups with the Zebra Optimisation Algorithm (binary ZOA, wrapper fitness).

    ``fit`` runs, on the training data only:

    0. Search space: the feature groups (``feature_groups``), optionally cut by a univariate
       pre-filter to the ``max_candidates`` groups of highest mean ANOVA F score of their
       columns (``sklearn.feature_selection.f_classif``).  Groups outside it are never
       selected.
    1. Initial population of ``n_zebras`` positions uniform in [0, 1]^D; with
       ``opposition=True`` (improvement: opposition-based start, Tizhoosh 2005) their
       opposites ``1 - x`` (the complementary masks) are evaluated too and the best
       ``n_zebras`` of both kept.
    2. Iterations of the two ZOA phases, each applied to the whole population at once (the
       pioneer is fixed during a phase) with greedy acceptance:
       foraging, ``x' = x + r * (PZ - I x)``, toward the pioneer zebra PZ (the best);
       defence, either escaping a lion, ``x' = x + R (2r - 1)(1 - t/T) x`` with R = 0.01, or
       closing ranks, ``x' = x + r (AZ - I x)``, toward a random zebra AZ (probability 1/2
       each); r uniform in [0, 1], I in {1, 2}.  Positions are clipped to [0, 1].  Each
       phase costs ``n_zebras`` fitness evaluations, so the number of iterations T is what
       ``budget`` evaluations allow after the initial population.
    3. Transfer: ``step`` keeps group j when x_j > 0.5; ``sigmoid`` keeps it with
       probability ``1 / (1 + exp(-10 (x_j - 0.5)))``.  An empty mask keeps its largest
       coordinate.
    4. Fitness ``(1 - alpha) * error + alpha * n_selected / D`` with ``error`` one minus the
       balanced accuracy (mean per-class recall) of ``classifier`` on the columns of the
       selected groups, predictions pooled over an inner cross-validation: ``GroupKFold``
       over ``groups`` (the training speakers) when given, else stratified.  A mask seen
       before is not evaluated again.

    5. Acceptance (``min_gain``): the best mask found replaces all groups only when its
       inner balanced accuracy beats theirs by more than ``min_gain``: by default one
       standard error of the paired difference over the inner test speakers (each
       speaker's balanced accuracy under both masks, from the same pooled predictions;
       over inner folds without ``groups``).  The best of some hundred noisy inner scores is
       optimistic (the winner's curse), so without this rule the search returns a subset
       that looks better inside and is worse on new speakers; this is the one-standard-error
       rule of Breiman et al. (1984), with all groups as the simplest model (no selection).

    The best mask ever seen is kept (greedy acceptance makes the pioneer's fitness
    non-increasing).  With ``start_with_all`` the all-groups mask is one of the initial
    zebras (its opposite, with opposition, the smallest mask), so the search can only
    improve on it.  Deterministic for an integer ``random_state``.  The pre-filter saw
    every training label, so the inner error of its candidates is somewhat optimistic; the
    outer, speaker-independent test is not affected.

    Parameters
    ----------
    feature_groups : {"column", "statistic", "single"} or list of (str, list)
        The groups selected whole, by a naming rule or explicitly (see ``feature_groups``).
        Names come from ``feature_names_in_`` (fit on a DataFrame); an unlabelled array's
        columns (``x0``, ``x1``...) are single-column groups.
    classifier : str or scikit-learn classifier
        Classifier of the fitness: a name registered in ``classify.classifiers``
        (``"logreg"``, ``"svm"``...) or an estimator, cloned for every fit.  The field
        selects for the classifier that follows, hence logistic regression by default.
    budget : int
        Fitness evaluations the search may ask for (initial population included); repeats
        of a mask are free, so at most this many classifier cross-validations run.  The
        default, 100 with 10 zebras and opposition, allows 4 iterations: at most 300
        logistic-regression fits of ~1,100 columns, about 6 min per training set of 660
        clips on one core (a budget of 40 took 2.4 min).
    n_zebras : int
        Population size N.
    alpha : float
        Weight of the number-of-groups penalty, in [0, 1).
    n_splits : int
        Inner cross-validation folds (capped by the number of groups or class sizes).
    max_candidates : int or None
        Size of the univariate pre-filter (step 0), in groups; None searches all groups.  On
        real speech (RAVDESS, 660 training clips) the pre-filter hurt: the 30 column groups
        of highest F are mostly loudness and mel bands, and all 30 together reach an inner
        balanced accuracy of 0.36 against 0.46 for all 243 groups.
    opposition : bool
        Opposition-based initial population (step 1).
    start_with_all : bool
        Make the first initial zebra the all-groups mask (position 1 everywhere).  Zebras
        drawn uniformly keep about half of the groups, and half of emofuse's groups chosen at
        random lose 3 points to all of them on real speech (RAVDESS, 12 speakers, LOSO), so
        a search that never sees the full set starts behind it.
    min_gain : "se", float or None
        Step 5: ``"se"``, one standard error of the paired per-speaker difference; a float,
        a fixed margin of inner balanced accuracy; None, no check (the best mask is kept).
    transfer : {"step", "sigmoid"}
        Transfer function from positions to masks (step 3).
    progress : bool or None
        A tqdm progress bar over iterations; None shows it on a terminal only.
    random_state : int, RandomState or None

    Attributes
    ----------
    support_ : np.ndarray [shape=(n_features,), dtype=bool]
        The selected features.
    feature_groups_ : list of (str, np.ndarray)
        Every group, with its column indices.
    candidates_ : np.ndarray [shape=(n_candidates,), dtype=int]
        Indices in ``feature_groups_`` of the groups the search ran over.
    selected_groups_ : list of str
        Names of the selected groups.
    n_iter_ : int
        Iterations T the budget allowed.
    n_evaluations_ : int
        Distinct masks whose fitness was computed (cross-validations run).
    fitness_history_ : np.ndarray [shape=(n_iter_ + 1,)]
        Best fitness after initialisation and after each iteration (non-increasing).
    cv_score_ : float
        Inner cross-validated balanced accuracy of the selected groups.
    search_score_ : float
        Inner balanced accuracy of the best mask the search found (``cv_score_`` unless the
        acceptance rule fell back to all groups).
    gain_, gain_se_ : float
        Inner gain of the best mask over all groups (mean over inner test speakers, or inner
        folds) and its standard error.
    fell_back_ : bool
        True when the acceptance rule kept all groups instead of the best mask.
    reference_scores_ : dict
        Inner balanced accuracy, same classifier and folds, of ``"all"`` candidate groups
        and of ``"random"`` groups as many as selected.
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
        feature_groups="column",
        classifier="logreg",
        budget=100,
        n_zebras=10,
        alpha=0.01,
        n_splits=3,
        max_candidates=None,
        opposition=True,
        start_with_all=True,
        min_gain="se",
        transfer="step",
        progress=None,
        random_state=None,
    ):
        self.feature_groups = feature_groups
        self.classifier = classifier
        self.budget = budget
        self.n_zebras = n_zebras
        self.alpha = alpha
        self.n_splits = n_splits
        self.max_candidates = max_candidates
        self.opposition = opposition
        self.start_with_all = start_with_all
        self.min_gain = min_gain
        self.transfer = transfer
        self.progress = progress
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Search a mask of feature groups on ``X`` [shape=(n_samples, n_features)], labels
        ``y`` and optional ``groups`` [shape=(n_samples,)] (speakers) for the inner
        cross-validation."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"zebra selection needs at least 2 classes; got {len(self.classes_)} class")
        if not 0 <= self.alpha < 1:
            raise ValueError(f"alpha must be in [0, 1), got {self.alpha}")
        if not (self.min_gain is None or self.min_gain == "se" or isinstance(self.min_gain, (int, float))):
            raise ValueError(f"min_gain must be 'se', a number or None, got {self.min_gain!r}")
        if self.transfer not in _TRANSFERS:
            raise ValueError(f"transfer must be one of {sorted(_TRANSFERS)}, got {self.transfer!r}")
        initial = self.n_zebras * (2 if self.opposition else 1)
        if self.n_zebras < 1 or self.budget < initial:
            raise ValueError(
                f"budget={self.budget} evaluations does not cover the initial population of "
                f"{initial} (n_zebras={self.n_zebras}{', with opposites' if self.opposition else ''})"
            )
        rng = check_random_state(self.random_state)
        names = getattr(self, "feature_names_in_", [f"x{j}" for j in range(X.shape[1])])
        self.feature_groups_ = feature_groups(names, self.feature_groups)
        # 0. Search space: the groups, optionally pre-filtered.
        self.candidates_ = self._prefilter(X, y)
        units = [self.feature_groups_[g][1] for g in self.candidates_]
        classifier = resolve_classifier(self.classifier, self.random_state)
        folds = inner_folds(y, groups, self.n_splits, rng)
        fitness = _WrapperFitness(X, y, units, classifier, folds, self.alpha)
        # 1-4. Binary ZOA.
        self.n_iter_ = (self.budget - initial) // (2 * self.n_zebras)
        best_mask, history = self._search(fitness, len(units), rng)
        self.fitness_history_ = history
        self.search_score_ = 1.0 - float(fitness.errors(best_mask[None])[0])
        # 5. Acceptance against all groups.
        all_mask = np.ones(len(units), dtype=bool)
        units_of_comparison = groups if groups is not None and len(np.unique(groups)) >= 2 else _fold_labels(folds, len(y))
        self.gain_, self.gain_se_ = fitness.paired_gain(best_mask, all_mask, np.asarray(units_of_comparison))
        margin = self.gain_se_ if self.min_gain == "se" else self.min_gain
        self.fell_back_ = bool(margin is not None and not best_mask.all() and self.gain_ <= margin)
        if self.fell_back_:
            best_mask = all_mask
        self.support_ = fitness.columns(best_mask)
        self.selected_groups_ = [self.feature_groups_[g][0] for g in self.candidates_[best_mask]]
        self.n_evaluations_ = fitness.n_evaluations
        self.cv_score_ = 1.0 - float(fitness.errors(best_mask[None])[0])
        random_mask = np.zeros(len(units), dtype=bool)
        random_mask[rng.choice(len(units), best_mask.sum(), replace=False)] = True
        self.reference_scores_ = {
            name: 1.0 - float(fitness.errors(mask[None])[0]) for name, mask in (("all", all_mask), ("random", random_mask))
        }
        return self

    def _get_support_mask(self):
        check_is_fitted(self)
        return self.support_

    def _prefilter(self, X, y):
        n_groups = len(self.feature_groups_)
        if self.max_candidates is None or self.max_candidates >= n_groups:
            return np.arange(n_groups)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.nan_to_num(f_classif(X, y)[0], nan=0.0, posinf=np.finfo(float).max)
        group_scores = np.array([scores[columns].mean() for _, columns in self.feature_groups_])
        return np.sort(np.argsort(-group_scores, kind="stable")[: self.max_candidates])

    def _search(self, fitness, n_dims, rng):
        n, transfer = self.n_zebras, _TRANSFERS[self.transfer]
        positions = rng.random_sample((n, n_dims))
        if self.start_with_all:
            positions[0] = 1.0
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
        iterations = tqdm(range(1, self.n_iter_ + 1), desc="zebra", unit="iteration", leave=False,
                          disable=None if self.progress is None else not self.progress)
        for t in iterations:
            # Phase 1, foraging: move toward the pioneer zebra.
            pioneer = positions[scores.argmin()]
            step = rng.random_sample((n, n_dims)) * (pioneer - rng.randint(1, 3, (n, 1)) * positions)
            positions, masks, scores = _accept(positions, masks, scores, positions + step, fitness, transfer, rng)
            # Phase 2, defence: escape a lion (small shrinking move) or close ranks toward an
            # attacked zebra.
            r = rng.random_sample((n, n_dims))
            escape = 0.01 * (2 * r - 1) * (1 - t / self.n_iter_) * positions
            attacked = positions[rng.randint(0, n, n)]
            close_ranks = r * (attacked - rng.randint(1, 3, (n, 1)) * positions)
            step = np.where(rng.random_sample((n, 1)) < 0.5, escape, close_ranks)
            positions, masks, scores = _accept(positions, masks, scores, positions + step, fitness, transfer, rng)
            history.append(scores.min())
            iterations.set_postfix(fitness=f"{history[-1]:.4f}", evaluations=fitness.n_evaluations)
        return masks[scores.argmin()], np.asarray(history)


def _fold_labels(folds, n):
    """Inner test fold of each row [shape=(n,)] (the units of the paired comparison without speakers)."""
    labels = np.zeros(n, dtype=int)
    for k, (_, test) in enumerate(folds):
        labels[test] = k
    return labels


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


class _WrapperFitness:
    """Fitness of masks over groups of columns: the classifier's cross-validated balanced
    error on the selected columns, plus the size penalty; each distinct mask is evaluated once.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    y : np.ndarray [shape=(n,)]
        Class indices.
    units : list of np.ndarray
        Column indices of each group the masks select.
    classifier : scikit-learn classifier
        Cloned for every fit.
    folds : list of (np.ndarray, np.ndarray)
        Inner folds.
    alpha : float
        Weight of the size penalty.
    """

    def __init__(self, X, y, units, classifier, folds, alpha):
        self.X, self.y, self.units, self.classifier, self.folds, self.alpha = X, y, units, classifier, folds, alpha
        self.cache = {}  # packed mask -> (balanced error, pooled inner predictions)

    @property
    def n_evaluations(self):
        """Distinct masks evaluated so far."""
        return len(self.cache)

    def columns(self, mask):
        """Boolean column mask [shape=(d,)] of a group mask [shape=(n_units,)]."""
        support = np.zeros(self.X.shape[1], dtype=bool)
        for unit in np.flatnonzero(mask):
            support[self.units[unit]] = True
        return support

    def errors(self, masks):
        """Balanced cross-validated error of each mask [shape=(n_masks, n_units)] -> (n_masks,)."""
        return np.array([self._error(mask) for mask in masks])

    def paired_gain(self, mask, reference, units):
        """Gain in balanced accuracy of ``mask`` over ``reference`` (group masks) and its
        standard error, over the distinct values of ``units`` [shape=(n,)] (inner test
        speakers): each unit's balanced accuracy under both masks, from their pooled inner
        predictions; the mean and the standard error of the paired differences."""
        predicted, predicted_reference = self._evaluate(mask)[1], self._evaluate(reference)[1]
        differences = np.array([
            balanced_accuracy_score(self.y[rows], predicted[rows]) - balanced_accuracy_score(self.y[rows], predicted_reference[rows])
            for rows in (units == u for u in np.unique(units))
        ])
        se = differences.std(ddof=1) / np.sqrt(len(differences)) if len(differences) > 1 else np.inf
        return float(differences.mean()), float(se)

    def _error(self, mask):
        return self._evaluate(mask)[0]

    def _evaluate(self, mask):
        key = np.packbits(mask).tobytes()
        if key not in self.cache:
            X = self.X[:, self.columns(mask)]
            predicted = cross_validated_predictions(self.classifier, X, self.y, self.folds)
            self.cache[key] = (1.0 - balanced_accuracy_score(self.y, predicted), predicted)
        return self.cache[key]

    def __call__(self, masks):
        """Fitness ``(1 - alpha) error + alpha |m| / D`` of each mask."""
        return (1 - self.alpha) * self.errors(masks) + self.alpha * masks.sum(axis=1) / len(self.units)
