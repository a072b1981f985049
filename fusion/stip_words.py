"""A bag of visual words over space-time interest point descriptors, fitted at fusion time.

The STIP descriptors of a clip come from the feature store (``features.stip``); the codebook
is learnt from the training clips of a fold only, so it lives with the fusion steps (and
keeps scikit-learn out of feature extraction).
"""

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.cluster import MiniBatchKMeans
from sklearn.utils.validation import check_is_fitted

from features.errors import FeatureError


def _check_descriptor_sets(X, n_dims=None) -> list:
    """Per-clip descriptor arrays as 2-D float arrays of one width (``n_dims`` if given)."""
    clips = [np.asarray(descriptors, float) for descriptors in X]
    if not clips:
        raise FeatureError("X must hold at least one clip's descriptor array, got none")
    n_dims = clips[0].shape[-1] if n_dims is None else n_dims
    for i, descriptors in enumerate(clips):
        if descriptors.ndim != 2 or descriptors.shape[1] != n_dims:
            raise FeatureError(
                f"X[{i}]: expected a descriptor array of shape (n_points, {n_dims}), got {descriptors.shape}"
            )
    return clips


class StipBagOfWords(TransformerMixin, BaseEstimator):
    """Bag of visual words over space-time interest point descriptors.

    A codebook of ``n_words`` descriptors (mini-batch k-means) is learnt from the points
    of the clips passed to ``fit`` only (in the pipeline: the training speakers of a
    fold); ``transform`` assigns each point of a clip to its nearest word and returns the
    clip's normalised word histogram.

    Parameters
    ----------
    n_words : int > 0
        Codebook size.
    random_state : int or None
        Seed of the k-means initialisation and mini-batches.

    Attributes
    ----------
    codebook_ : np.ndarray [shape=(n_words, d)]
        The visual words.
    kmeans_ : MiniBatchKMeans
        The fitted clusterer.

    References
    ----------
    .. [1] I. Laptev, M. Marszalek, C. Schmid and B. Rozenfeld, "Learning realistic human
           actions from movies", CVPR 2008.
    """

    def __init__(self, n_words=64, random_state=0):
        self.n_words = n_words
        self.random_state = random_state

    def fit(self, X, y=None):
        """Learn the codebook from all points of the clips in ``X``.

        Parameters
        ----------
        X : sequence of np.ndarray [shape=(n_i, d)]
            One descriptor array per clip (n_i may be 0).
        y : ignored

        Returns
        -------
        self
        """
        points = np.concatenate(_check_descriptor_sets(X))
        if len(points) < self.n_words:
            raise FeatureError(
                f"StipBagOfWords needs at least n_words={self.n_words} points to fit, got {len(points)}"
            )
        self.kmeans_ = MiniBatchKMeans(
            n_clusters=self.n_words, random_state=self.random_state, n_init=3
        ).fit(points)
        self.codebook_ = self.kmeans_.cluster_centers_
        return self

    def transform(self, X) -> np.ndarray:
        """Word histograms of clips.

        Parameters
        ----------
        X : sequence of np.ndarray [shape=(n_i, d)]

        Returns
        -------
        histograms : np.ndarray [shape=(len(X), n_words)]
            Fraction of each clip's points assigned to each word (rows sum to 1); a row of
            zeros for a clip without points.
        """
        check_is_fitted(self, "codebook_")
        clips = _check_descriptor_sets(X, n_dims=self.codebook_.shape[1])
        histograms = np.zeros((len(clips), self.n_words))
        for row, descriptors in zip(histograms, clips):
            if len(descriptors):
                row[:] = np.bincount(self.kmeans_.predict(descriptors), minlength=self.n_words)
                row /= len(descriptors)
        return histograms

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``stip_word_0`` ... ``stip_word_<n_words - 1>``."""
        return np.array([f"stip_word_{i}" for i in range(self.n_words)], dtype=object)
