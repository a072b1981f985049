"""Speaker normalisation: z-score each speaker's features with that speaker's own statistics."""

import warnings

import numpy as np

from extract.errors import EmofuseError


def speaker_zscore(X, speakers, reference=None):
    """Standardise every speaker's rows with the mean and deviation of that speaker alone.

    The statistics use no labels and no other speaker, so applying this to test speakers
    with their own statistics leaks nothing from training to test (nor the reverse): it
    is an unsupervised, per-speaker preprocessing, legitimate once a speaker's unlabelled
    clips are available.  It removes speaker traits (voice pitch range, face shape) that
    otherwise dominate emotion cues.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, d)]
        Clip-level features; NaN marks missing values and is kept.
    speakers : array-like [shape=(n_clips,)]
        Speaker of each row.
    reference : np.ndarray [shape=(n_clips,), dtype=bool] or None
        Rows whose values give a speaker's statistics, for each speaker that has such rows
        (others use all their rows).  In a fold, the training rows: a speaker on both sides
        (random split) is then normalised with its training clips only, so its test clips
        cannot shift the training features.  None: all rows.

    Returns
    -------
    Z : np.ndarray [shape=(n_clips, d), dtype=float32]
        Per speaker and column, zero mean and unit standard deviation over the non-missing
        reference values; a column constant within a speaker becomes 0.

    Raises
    ------
    EmofuseError
        ``speakers`` or ``reference`` does not give one value per row of ``X``.
    """
    X = np.asarray(X, dtype=np.float64)
    speakers = np.asarray(speakers)
    reference = np.ones(len(X), bool) if reference is None else np.asarray(reference, bool)
    if speakers.shape != (len(X),) or reference.shape != (len(X),):
        raise EmofuseError(
            f"speakers and reference must have shape ({len(X)},), got {speakers.shape} and {reference.shape}"
        )
    Z = np.empty_like(X)
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        source = rows & reference if (rows & reference).any() else rows
        with warnings.catch_warnings():  # a column with no value for this speaker stays NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanmean(X[source], axis=0)
            std = np.nanstd(X[source], axis=0)
        Z[rows] = (X[rows] - mean) / np.where(std > 1e-12 * (1.0 + np.abs(mean)), std, 1.0)
    return Z.astype(np.float32)
