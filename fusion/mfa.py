"""Marginal Fisher Analysis: a supervised projection that keeps each class compact and the
margins between classes wide (Yan et al., TPAMI 2007; DV-EmotionNet eqs. 16-25)."""

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.sparse.csgraph
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data


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
        projection fits noise (METHODS.md: 3-D kNN accuracy 0.30 with k2 = 20 vs 0.43 with
        k2 = 400 on 150-sample classes), so None scales it with class size:
        ``k2_c = 5 n_c`` pairs for a class of ``n_c`` samples.
    pca : int, float or None
        PCA applied first: number of components, or fraction of variance in (0, 1).  None:
        ``n_samples - n_classes`` components (Yan et al.), capped by the rank of the data.
    reg : float
        Ridge added to ``X L^p X^T``, relative to its mean eigenvalue, so that the
        generalised eigenproblem is well posed.

    Attributes
    ----------
    mean_ : np.ndarray [shape=(n_features,)]
        Training mean, subtracted before projecting.
    components_ : np.ndarray [shape=(n_components, n_features)]
        Unit-length projection directions in input space, best (smallest S_c / S_p) first,
        signed so that the largest coefficient is positive.
    eigenvalues_ : np.ndarray [shape=(n_components,)]
        The ratios S_c / S_p (regularised) of the directions, ascending.
    classes_ : np.ndarray
        Class labels seen in ``fit``.
    n_pca_components_ : int
        Dimension of the PCA subspace MFA was solved in.

    References
    ----------
    S. Yan, D. Xu, B. Zhang, H.-J. Zhang, Q. Yang, S. Lin, "Graph Embedding and Extensions:
    A General Framework for Dimensionality Reduction", IEEE TPAMI 29(1), 2007.
    """

    def __init__(self, n_components=None, k1=5, k2=None, pca=None, reg=1e-3):
        self.n_components = n_components
        self.k1 = k1
        self.k2 = k2
        self.pca = pca
        self.reg = reg

    def fit(self, X, y):
        """Learn the projection from ``X`` [shape=(n_samples, n_features)] and labels ``y``."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"MFA needs at least 2 classes; got {len(self.classes_)} class")
        # 1. PCA: centre, and project onto the leading principal axes so that the scatter
        #    matrices below are small and (with the ridge) non-singular.
        self.mean_ = X.mean(axis=0)
        _, s, Vt = scipy.linalg.svd(X - self.mean_, full_matrices=False)
        axes = Vt[: self._n_pca(s, len(X), len(self.classes_))]
        self.n_pca_components_ = len(axes)
        Z = (X - self.mean_) @ axes.T
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
        self.components_ = components * signs[:, None]
        self.eigenvalues_ = eigenvalues
        return self

    def transform(self, X):
        """Embedding ``Y = W^T (x - mean)`` [shape=(n_samples, n_components)]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) @ self.components_.T

    def get_feature_names_out(self, input_features=None):
        """Output names ``mfa0``, ``mfa1``, ..."""
        check_is_fitted(self)
        _check_feature_names_in(self, input_features)
        return np.asarray([f"mfa{i}" for i in range(len(self.components_))], dtype=object)

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
