"""Early fusion: per-modality imputation, standardisation and optional PCA, then concatenation."""

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data


class MedianImputer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Missing values (NaN) -> the training median of their column; 0 for a column with none.

    The same values as scikit-learn's ``SimpleImputer(strategy="median",
    keep_empty_features=True)``, computed with ``np.median`` over the complete columns (one
    partition of the matrix) and ``np.nanmedian`` over those with gaps (column by column)
    instead of masked arrays: on 660 real-speech clips x 2,289 complete columns, 0.029 s of
    CPU against 0.088 for the masked arrays and 0.052 for ``np.nanmedian`` alone, and fusion
    fits once per fold and inner split.

    Attributes
    ----------
    statistics_ : np.ndarray [shape=(n_features,)]
        The value that replaces a missing one in each column.
    """

    def fit(self, X, y=None):
        """Column medians of ``X`` [shape=(n_samples, n_features)], NaN ignored."""
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        gaps = np.isnan(X).any(axis=0)
        medians = np.empty(X.shape[1])
        medians[~gaps] = np.median(X[:, ~gaps], axis=0)  # one partition of the complete columns
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "All-NaN slice": a column with no value
            medians[gaps] = np.nanmedian(X[:, gaps], axis=0)
        self.statistics_ = np.where(np.isnan(medians), 0.0, medians)
        return self

    def transform(self, X):
        """``X`` [shape=(n_samples, n_features), dtype=float64] with each NaN replaced."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return np.where(np.isnan(X), self.statistics_, X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class BlockConcat(TransformerMixin, BaseEstimator):
    """Standardise each block of columns (a modality) on its own, optionally reduce it by PCA,
    and concatenate the blocks.

    Per block, fitted on the training rows only: (1) missing values (NaN, e.g. a clip without
    video) are replaced by the training median of their column; (2) every column is scaled to
    zero mean and unit variance; (3) optionally PCA keeps a given number of components (or a
    fraction of the variance), so that a block with thousands of columns (HOG) does not drown
    one with a hundred (audio functionals).  The output is the blocks side by side.

    Parameters
    ----------
    blocks : list of (str, int or list of int), or None
        The blocks, in output order, by name and either a column count (blocks of consecutive
        columns, which must add up to the number of input columns), or the column indices.
        None: one block ``"all"`` of every column.
    pca : None, int, float or dict
        Per-block PCA: None (no PCA), the number of components (capped by the block's rank
        limit ``min(n_samples, n_columns)``), or a variance fraction in (0, 1).  A dict gives
        it per block name (missing names: no PCA).
    video_pca : None, int, float or "match"
        PCA of the block named ``video``, overriding ``pca`` for it; ``"match"`` keeps as
        many components as the ``audio`` block has output columns, DV-EmotionNet's
        reduction of the video features to the audio feature count (Dommeti et al. 2024,
        who do not name the technique; PCA is the field's default).

    Attributes
    ----------
    column_transformer_ : sklearn.compose.ColumnTransformer
        The fitted per-block imputer -> scaler -> PCA chains.
    block_columns_ : list of (str, np.ndarray)
        The resolved column indices of each block.
    n_features_in_, feature_names_in_
        As in scikit-learn.
    """

    def __init__(self, blocks=None, pca=None, video_pca=None):
        self.blocks = blocks
        self.pca = pca
        self.video_pca = video_pca

    def fit(self, X, y=None):
        """Fit imputers, scalers and PCAs of every block on ``X`` [shape=(n_samples, n_features)]."""
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        self.block_columns_ = self._resolve_blocks(X.shape[1])
        chains = [
            (name, make_pipeline(*self._block_steps(name, X.shape[0], len(columns))), columns)
            for name, columns in self.block_columns_
        ]
        self.column_transformer_ = ColumnTransformer(chains, remainder="drop").fit(X)
        return self

    def transform(self, X):
        """Fused features [shape=(n_samples, n_features_out), dtype=float64]."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return np.asarray(self.column_transformer_.transform(X), dtype=np.float64)

    def get_feature_names_out(self, input_features=None):
        """Output names ``<block>__<input name>``, or ``<block>__pca<i>`` for PCA blocks."""
        check_is_fitted(self)
        input_features = _check_feature_names_in(self, input_features)
        return self.column_transformer_.get_feature_names_out(input_features)

    def _resolve_blocks(self, n_features):
        if self.blocks is None:
            return [("all", np.arange(n_features))]
        resolved, start = [], 0
        for name, columns in self.blocks:
            if np.isscalar(columns):
                columns = np.arange(start, start + int(columns))
                start += len(columns)
            columns = np.asarray(columns, dtype=int)
            if columns.size and (columns.min() < 0 or columns.max() >= n_features):
                raise ValueError(f"block {name!r} has columns outside [0, {n_features})")
            resolved.append((str(name), columns))
        if start and start != n_features:
            raise ValueError(f"block sizes add up to {start}, but X has {n_features} columns")
        return resolved

    def _block_steps(self, name, n_samples, n_columns):
        n_components = self._n_components(name)
        if n_components == "match":
            n_components = self._n_components("audio") or len(dict(self.block_columns_).get("audio", ()))
            if not isinstance(n_components, numbers.Integral) or n_components < 1:
                raise ValueError("video_pca='match' needs an audio block with a column count (or PCA count)")
        steps = [MedianImputer(), StandardScaler()]
        if n_components is not None:
            if n_components >= 1:
                n_components = min(int(n_components), n_samples, n_columns)
            steps.append(PCA(n_components=n_components, svd_solver="full"))
        return steps

    def _n_components(self, name):
        if name == "video" and self.video_pca is not None:
            return self.video_pca
        return self.pca.get(name) if isinstance(self.pca, dict) else self.pca

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
