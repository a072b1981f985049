"""Marginal Fisher Analysis: a supervised projection that keeps each class compact and the
margins between classes wide (Yan et al., TPAMI 2007; DV-EmotionNet eqs. 16-25)."""

import numpy as np
import pandas as pd
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import ParameterGrid
from sklearn.pipeline import make_pipeline
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from .tuning import cross_validated_accuracy, inner_folds, resolve_classifier


def intrinsic_graph(X, y, k1):
    """Same-class nearest-neighbour graph of MFA.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    y : np.ndarray [shape=(n,)]
        Class of each row.
    k1 : int
        Neighbours per sample (capped by its class size minus one).

    Returns
    -------
    W : scipy.sparse.csr_array [shape=(n, n)]
        ``W[i, j] = 1`` if i is among the k1 nearest same-class neighbours of j or j of i.
    """
    rows, cols = [], []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = min(k1, len(members) - 1)
        if k < 1:
            continue
        dist = _sq_distances(X[members], X[members])
        np.fill_diagonal(dist, np.inf)
        nearest = np.argsort(dist, axis=1, kind="stable")[:, :k]
        rows.append(np.repeat(members, k))
        cols.append(members[nearest.ravel()])
    return _symmetric_graph(rows, cols, len(y))


def penalty_graph(X, y, k2):
    """Between-class marginal-pair graph of MFA.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    y : np.ndarray [shape=(n,)]
        Class of each row.
    k2 : int or None
        Shortest between-class pairs taken per class.  None scales it with the class:
        ``k2_c = 5 * n_c`` pairs for a class of ``n_c`` samples (see ``MarginalFisherAnalysis``).

    Returns
    -------
    Wp : scipy.sparse.csr_array [shape=(n, n)]
        ``Wp[i, j] = 1`` if (i, j) is among the k2 shortest between-class pairs of the class
        of i or of the class of j.
    """
    rows, cols = [], []
    for c in np.unique(y):
        members, others = np.flatnonzero(y == c), np.flatnonzero(y != c)
        dist = _sq_distances(X[members], X[others]).ravel()
        k = min(5 * len(members) if k2 is None else k2, dist.size)
        if k < 1:
            continue
        shortest = np.argpartition(dist, k - 1)[:k] if k < dist.size else np.arange(dist.size)
        rows.append(members[shortest // len(others)])
        cols.append(others[shortest % len(others)])
    return _symmetric_graph(rows, cols, len(y))


def name_blocks(names, n_features):
    """Column indices of each block, read from ``<block>__`` name prefixes.

    Parameters
    ----------
    names : sequence of str or None
        Feature names, e.g. ``BlockConcat``'s ``audio__mfcc_3_mean``; None: one block.
    n_features : int

    Returns
    -------
    blocks : list of np.ndarray [dtype=int]
        In order of first appearance; names without a prefix form one block together.
    """
    if names is None:
        return [np.arange(n_features)]
    prefixes = np.array([str(n).partition("__")[0] if "__" in str(n) else "" for n in names])
    return [np.flatnonzero(prefixes == p) for p in dict.fromkeys(prefixes)]


def _sq_distances(A, B):
    return np.maximum((A**2).sum(1)[:, None] - 2.0 * A @ B.T + (B**2).sum(1)[None, :], 0.0)


def _symmetric_graph(rows, cols, n):
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    W = scipy.sparse.coo_array((np.ones(len(rows)), (rows, cols)), shape=(n, n)).tocsr()
    W = W + W.T
    W.data[:] = 1.0  # "i of j or j of i": an edge found twice counts once
    return W


class MarginalFisherAnalysis(TransformerMixin, BaseEstimator):
    """Marginal Fisher Analysis (MFA), a graph-embedding generalisation of LDA.

    MFA looks for directions w that keep every sample close to its nearest same-class
    neighbours (intrinsic graph) and far from the nearest samples of other classes along
    the class margins (penalty graph), without LDA's assumption of Gaussian classes.

    Parameters
    ----------
    n_components : int or None
        Output dimension; None: ``n_classes - 1`` (as LDA).  Capped by the PCA dimension.
    k1 : int
        Same-class neighbours per sample in the intrinsic graph.
    k2 : int or None
        Between-class pairs per class in the penalty graph.  The paper uses a fixed count;
        a fixed small k2 leaves ``X L^p X^T`` nearly rank-deficient on large classes and the
        projection fits noise (on a synthetic 600 x 40, 4-class set with two clusters per
        class, kNN accuracy in a 3-D MFA space under 5-fold CV was 0.30 with k2 = 20 and 0.43
        with k2 = 400), so None scales it with class size:
        ``k2_c = 5 n_c`` pairs for a class of ``n_c`` samples.
    pca : int, float or None
        PCA applied first: number of components, or fraction of variance in (0, 1).  None:
        ``n_samples - n_classes`` components (Yan et al.), capped by the rank of the data.
    reg : float
        Ridge added to ``X L^p X^T``, relative to its mean eigenvalue, so that the
        generalised eigenproblem is well posed.
    per_block : bool
        One MFA per block of columns, outputs side by side (MFA per modality, then
        concatenation), instead of one on all columns.  Blocks are read from the feature
        names' ``<block>__`` prefixes (``BlockConcat``'s output names); without names, one block.
    append : bool
        Output the input columns followed by the projection, so that a classifier keeps what
        MFA discards.

    Attributes
    ----------
    mean_ : np.ndarray [shape=(n_features,)]
        Training mean, subtracted before projecting.
    components_ : np.ndarray [shape=(n_components, n_features)]
        Unit-length projection directions in input space, best (smallest S_c / S_p) first
        (block by block with ``per_block``, each row zero outside its block), signed so that
        the largest coefficient is positive.
    eigenvalues_ : np.ndarray [shape=(n_components,)]
        The ratios S_c / S_p (regularised) of the directions, ascending within a block.
    classes_ : np.ndarray
        Class labels seen in ``fit``.
    n_pca_components_ : int
        Dimension of the PCA subspace MFA was solved in (summed over blocks).

    References
    ----------
    S. Yan, D. Xu, B. Zhang, H.-J. Zhang, Q. Yang, S. Lin, "Graph Embedding and Extensions:
    A General Framework for Dimensionality Reduction", IEEE TPAMI 29(1), 2007.
    """

    def __init__(self, n_components=None, k1=5, k2=None, pca=None, reg=1e-3, per_block=False, append=False):
        self.n_components = n_components
        self.k1 = k1
        self.k2 = k2
        self.pca = pca
        self.reg = reg
        self.per_block = per_block
        self.append = append

    def fit(self, X, y):
        """Learn the projection from ``X`` [shape=(n_samples, n_features)] and labels ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"MFA needs at least 2 classes; got {len(self.classes_)} class")
        for name in ("per_block", "append"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        self.mean_ = X.mean(axis=0)
        components, eigenvalues, n_pca = [], [], 0
        for columns in self._blocks(X.shape[1]):
            block_components, block_eigenvalues, block_pca = self._fit_block(X[:, columns] - self.mean_[columns], y)
            padded = np.zeros((len(block_components), X.shape[1]))
            padded[:, columns] = block_components
            components.append(padded)
            eigenvalues.append(block_eigenvalues)
            n_pca += block_pca
        self.components_ = np.concatenate(components)
        self.eigenvalues_ = np.concatenate(eigenvalues)
        self.n_pca_components_ = n_pca
        return self

    def _blocks(self, n_features):
        """Column indices of each block MFA is solved on."""
        return name_blocks(getattr(self, "feature_names_in_", None) if self.per_block else None, n_features)

    def _fit_block(self, X, y):
        """Directions [shape=(n_out, d)], their ratios and the PCA dimension, of centred ``X``."""
        # 1. PCA: project onto the leading principal axes so that the scatter matrices below
        #    are small and (with the ridge) non-singular.
        _, s, Vt = scipy.linalg.svd(X, full_matrices=False)
        axes = Vt[: self._n_pca(s, len(X), len(self.classes_))]
        Z = X @ axes.T
        # 2. Intrinsic graph W (eq. 16) and penalty graph W^p (eq. 18), Laplacians L = D - W.
        L = scipy.sparse.csgraph.laplacian(intrinsic_graph(Z, y, self.k1))
        Lp = scipy.sparse.csgraph.laplacian(penalty_graph(Z, y, self.k2))
        # 3. Compactness S_c = X L X^T (eq. 17) and separability S_p = X L^p X^T (eq. 19),
        #    the latter with a relative ridge.
        Sc = Z.T @ (L @ Z)
        Sp = Z.T @ (Lp @ Z)
        Sp += self.reg * max(np.trace(Sp) / len(Sp), np.finfo(float).tiny) * np.eye(len(Sp))
        # 4. w* = argmin w^T S_c w / w^T S_p w: smallest generalised eigenvectors (eq. 20).
        n_out = min(self.n_components or len(self.classes_) - 1, len(axes))
        eigenvalues, vectors = scipy.linalg.eigh(Sc, Sp, subset_by_index=[0, n_out - 1])
        components = (axes.T @ vectors).T
        components /= np.linalg.norm(components, axis=1, keepdims=True)
        signs = np.sign(components[np.arange(n_out), np.abs(components).argmax(axis=1)])
        return components * signs[:, None], eigenvalues, len(axes)

    def transform(self, X):
        """Embedding ``Y = W^T (x - mean)`` [shape=(n_samples, n_components)], after the
        input columns with ``append`` [shape=(n_samples, n_features + n_components)]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        Y = (X - self.mean_) @ self.components_.T
        return np.hstack([X, Y]) if self.append else Y

    def get_feature_names_out(self, input_features=None):
        """Output names ``mfa0``, ``mfa1``, ..., after the input names with ``append``."""
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features)
        names = [f"mfa{i}" for i in range(len(self.components_))]
        return np.asarray([*input_features, *names] if self.append else names, dtype=object)

    def _n_pca(self, singular_values, n_samples, n_classes):
        rank = int((singular_values > singular_values[0] * 1e-10).sum()) if singular_values[0] > 0 else 1
        if self.pca is None:
            return max(1, min(rank, n_samples - n_classes))
        if self.pca < 1:
            ratio = np.cumsum(singular_values**2) / max((singular_values**2).sum(), np.finfo(float).tiny)
            return min(rank, int(np.searchsorted(ratio, self.pca) + 1))
        return min(rank, int(self.pca))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags


_MFA_PARAMS = ("n_components", "k1", "k2", "pca", "reg", "per_block", "append")

SEARCH = "search"
"""Value of a ``MarginalFisherAnalysisCV`` hyper-parameter that is chosen by its search."""

MFA_GRID = [
    {"pca": [30, 60, 120], "k1": [5, 10], "n_components": [None, 20], "append": [False]},
    {"pca": [60], "k1": [5], "n_components": [None], "append": [True]},
    {"pca": [60], "k1": [5], "n_components": [None], "per_block": [True]},
]
"""Default candidates of ``MarginalFisherAnalysisCV``: 14 settings (13 on one block).  PCA
dimensions from a few tens to about a fifth of a few hundred training clips (Yan et al.'s
n_samples - n_classes fits noise at that size), k1 = 5 and a wider
neighbourhood, LDA's n_classes - 1 outputs or 20; the projection appended to the
input (one setting: it keeps the input, so its other settings matter less); one MFA per
modality (one setting)."""


class MarginalFisherAnalysisCV(TransformerMixin, BaseEstimator):
    """Marginal Fisher Analysis whose hyper-parameters are chosen inside the training data.

    ``fit`` scores every candidate setting of ``param_grid`` by the balanced accuracy of
    ``MarginalFisherAnalysis -> classifier``, predictions pooled over an inner
    cross-validation grouped by speaker (``groups``; stratified over clips without), then
    refits MFA with the best setting on all of ``X``.  A hyper-parameter given a value here
    (anything but ``"search"``) is fixed in every candidate.  Ties go to the earlier
    candidate; a single candidate (``param_grid={}`` or every hyper-parameter fixed) is
    fitted directly, without the inner cross-validation.  The papers fix MFA's
    neighbourhoods and dimensions by hand or leave them unstated; choosing them on held-out
    data is the field's practice for hyper-parameters, and inner folds over the training
    speakers keep that choice speaker-independent.

    Parameters
    ----------
    n_components, k1, k2, pca, reg, per_block, append
        As in ``MarginalFisherAnalysis``, or ``"search"``: taken from ``param_grid``
        (``MarginalFisherAnalysis``'s default where the grid does not name it).
    param_grid : dict or list of dict, or None
        Candidate values per hyper-parameter, as ``sklearn.model_selection.ParameterGrid``;
        None: ``MFA_GRID``; ``{}``: no search, ``MarginalFisherAnalysis``'s defaults (with the
        fixed values), e.g. for a quick run.
    classifier : str or scikit-learn classifier
        Downstream classifier of the inner scores: a name registered in
        ``classify.classifiers`` or an estimator (cloned per fit).
    n_splits : int
        Inner folds.
    random_state : int, RandomState or None
        Seed of the classifier and of the stratified inner folds.

    Attributes
    ----------
    mfa_ : MarginalFisherAnalysis
        MFA with ``best_params_``, fitted on all of ``X``.
    best_params_ : dict
        The chosen setting, every ``MarginalFisherAnalysis`` parameter.
    best_score_ : float
        Its inner balanced accuracy; NaN for a single candidate (no inner CV was run).
    search_results_ : list of dict
        Every distinct candidate: ``params`` (all of them) and inner ``score`` (NaN for a
        single candidate), in grid order.
    classes_, n_features_in_, feature_names_in_
        As in ``MarginalFisherAnalysis``.
    """

    def __init__(self, n_components=SEARCH, k1=SEARCH, k2=SEARCH, pca=SEARCH, reg=SEARCH, per_block=SEARCH,
                 append=SEARCH, param_grid=None, classifier="logreg", n_splits=3, random_state=None):
        self.n_components = n_components
        self.k1 = k1
        self.k2 = k2
        self.pca = pca
        self.reg = reg
        self.per_block = per_block
        self.append = append
        self.param_grid = param_grid
        self.classifier = classifier
        self.n_splits = n_splits
        self.random_state = random_state

    def fit(self, X, y, groups=None):
        """Choose the setting and fit MFA on ``X`` [shape=(n_samples, n_features)], labels
        ``y`` and optional ``groups`` [shape=(n_samples,)] (speakers) for the inner folds."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"MFA needs at least 2 classes; got {len(self.classes_)} class")
        X = self._named(X)  # per-block MFA reads the blocks from the names
        folds = inner_folds(codes, groups, self.n_splits, check_random_state(self.random_state))
        classifier = resolve_classifier(self.classifier, self.random_state)
        n_blocks = len(name_blocks(getattr(self, "feature_names_in_", None), X.shape[1]))
        self.search_results_ = [{"params": params, "score": np.nan} for params in self._candidates(n_blocks)]
        if len(self.search_results_) > 1:  # a single candidate is not scored: there is nothing to choose
            for result in self.search_results_:
                model = make_pipeline(MarginalFisherAnalysis(**result["params"]), classifier)
                result["score"] = float(cross_validated_accuracy(model, X, codes, folds))
        best = max(range(len(self.search_results_)), key=lambda i: (self.search_results_[i]["score"], -i))
        self.best_params_ = self.search_results_[best]["params"]
        self.best_score_ = self.search_results_[best]["score"]
        self.mfa_ = MarginalFisherAnalysis(**self.best_params_).fit(X, y)
        return self

    def transform(self, X):
        """The chosen MFA's output (see ``MarginalFisherAnalysis.transform``)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.mfa_.transform(self._named(X))

    def get_feature_names_out(self, input_features=None):
        """As ``MarginalFisherAnalysis.get_feature_names_out`` for the chosen setting."""
        check_is_fitted(self)
        return self.mfa_.get_feature_names_out(_check_feature_names_in(self, input_features))

    def _named(self, X):
        """``X`` as a DataFrame with the fitted names, if there are any."""
        names = getattr(self, "feature_names_in_", None)
        return X if names is None else pd.DataFrame(X, columns=names)

    def _candidates(self, n_blocks):
        """The distinct settings to score, in grid order, fixed values applied (``per_block``
        dropped when there is one block)."""
        fixed = {name: value for name, value in self.get_params(deep=False).items()
                 if name in _MFA_PARAMS and not (isinstance(value, str) and value == SEARCH)}
        candidates = []
        for params in ParameterGrid(MFA_GRID if self.param_grid is None else self.param_grid):
            unknown = set(params) - set(_MFA_PARAMS)
            if unknown:
                raise ValueError(f"param_grid names {sorted(unknown)}, not parameters of MarginalFisherAnalysis")
            setting = {**MarginalFisherAnalysis().get_params(), **params, **fixed}
            if n_blocks == 1 and setting.get("per_block"):
                setting["per_block"] = False
            if setting not in candidates:
                candidates.append(setting)
        return candidates

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        return tags

