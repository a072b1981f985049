"""Per-clip functionals: fixed-length statistics of every column of a frame-level stream.

A clip of any length becomes one vector, the input of the clip-level classifiers.  All
statistics are NaN-aware: NaN frames (F0 of unvoiced frames, a face not found) are left
out.  A column without any valid frame gives NaN for every statistic; fractions stay
finite.  Where a statistic divides by a spread that is zero (a constant column, a single
valid frame), it is 0: standard deviation, slope, skewness and kurtosis of a constant are
0, as in openSMILE.
"""

import numpy as np

from features.errors import FeatureError

STATISTICS = (
    "mean",
    "std",
    "min",
    "max",
    "range",
    "p10",
    "p50",
    "p90",
    "slope",
    "skewness",
    "kurtosis",
)
"""The statistics of each column, in output order."""

VOICING_COLUMN = "voiced"
"""A 0/1 column (``voiced``, or ``voiced_<tracker>`` such as ``voiced_acf``) that marks the frames
the stream's other columns are defined on."""

_PERCENTILES = (10, 50, 90)


def functionals(stream):
    """Statistics of every column of a stream over the clip's frames.

    Per column: mean, standard deviation (population, ``ddof=0``), minimum, maximum,
    range, 10th / 50th / 90th percentiles (linear interpolation, as ``np.percentile``),
    least-squares slope against time (units per second), skewness and excess kurtosis
    (the biased moment estimators, as ``scipy.stats.skew`` and ``scipy.stats.kurtosis``).

    A stream with a :data:`VOICING_COLUMN` (the pitch stream) is summarised as voiced
    speech: that column gives only ``<voicing column>_fraction`` (``voiced_fraction``), the
    fraction of frames where it is positive, and the other columns, over those frames only,
    give statistics named ``<column>_voiced_<statistic>``, e.g. ``f0_voiced_p50``.

    Parameters
    ----------
    stream : Stream
        Frame-level sequence, ``values`` of shape (t, d) with NaN for undefined frames.

    Returns
    -------
    values : np.ndarray [shape=(k * d,) or (k * (d - 1) + 1,), dtype=float32]
        The statistics, column after column, k = len(STATISTICS) per column.
    names : list of str
        ``<column>_<statistic>``, e.g. ``mfcc_3_delta_mean``, in the same order.
    """
    values = np.asarray(stream.values, dtype=np.float64)
    if not 0 < stream.frame_rate < np.inf:
        raise FeatureError(f"stream frame_rate must be positive, got {stream.frame_rate!r}")
    infinite = np.isinf(values).any(axis=0)
    if infinite.any():
        raise FeatureError(
            f"stream column {stream.names[np.argmax(infinite)]!r} holds infinite values"
        )
    names = list(stream.names)
    fractions, fraction_names = [], []
    voicing_names = [n for n in names if n == VOICING_COLUMN or n.startswith(f"{VOICING_COLUMN}_")]
    if voicing_names:
        voicing = names.index(voicing_names[0])
        voiced = values[:, voicing] > 0
        fractions = [voiced.sum() / max(len(values), 1)]
        fraction_names = [f"{voicing_names[0]}_fraction"]
        values = np.delete(values, voicing, axis=1)
        values[~voiced] = np.nan
        names = [f"{name}_{VOICING_COLUMN}" for i, name in enumerate(names) if i != voicing]
    statistics = _column_statistics(values, stream.frame_rate)  # (k, d)
    result = np.concatenate([statistics.T.ravel(), fractions]).astype(np.float32)
    result_names = [f"{name}_{statistic}" for name in names for statistic in STATISTICS]
    return result, result_names + fraction_names


def _column_statistics(values, frame_rate):
    """The :data:`STATISTICS` of each column of a (t, d) array with NaNs, shape (k, d)."""
    if not len(values):
        values = np.full((1, values.shape[1]), np.nan)  # no frames: every statistic NaN
    valid = ~np.isnan(values)
    count = valid.sum(axis=0)
    columns = np.arange(values.shape[1])
    with np.errstate(invalid="ignore", divide="ignore"):
        # 1. Order statistics, from each column sorted with its NaNs last; np.percentile's
        #    linear rule: position q (n - 1) between the two nearest order statistics.
        ordered = np.sort(values, axis=0)
        last = np.maximum(count - 1, 0)
        minimum, maximum = ordered[0], ordered[last, columns]
        percentiles = []
        for q in _PERCENTILES:
            position = q / 100 * last
            below = np.floor(position).astype(int)
            above = np.minimum(below + 1, last)
            low, high = ordered[below, columns], ordered[above, columns]
            percentiles.append(low + (position - below) * (high - low))
        # 2. Central moments m_r = (1/n) sum (x - mean)^r over the valid frames.
        mean = np.where(valid, values, 0).sum(axis=0) / count
        centred = np.where(valid, values - mean, 0)
        squared = centred * centred
        m2 = squared.sum(axis=0) / count
        m3 = (squared * centred).sum(axis=0) / count
        m4 = (squared * squared).sum(axis=0) / count
        # 3. A column is flat when m2 is below the float32 resolution of its magnitude;
        #    its spread-normalised statistics are then 0.
        magnitude = np.abs(np.where(valid, values, 0)).max(axis=0)
        flat = m2 <= (np.finfo(np.float32).eps * magnitude) ** 2
        std = np.where(flat, 0, np.sqrt(m2))
        # 4. Skewness m3 / m2^1.5 and excess kurtosis m4 / m2^2 - 3.
        skewness = np.where(flat, 0, m3 / m2**1.5)
        kurtosis = np.where(flat, 0, m4 / m2**2 - 3)
        # 5. Slope of the least-squares line x = a + slope * time, time in seconds.
        time = np.arange(len(values))[:, np.newaxis] / frame_rate
        time_centred = np.where(valid, time - np.where(valid, time, 0).sum(axis=0) / count, 0)
        time_spread = (time_centred * time_centred).sum(axis=0)
        slope = np.where(time_spread > 0, (time_centred * centred).sum(axis=0) / time_spread, 0)
        slope = np.where(count > 0, slope, np.nan)
    return np.stack(
        [mean, std, minimum, maximum, maximum - minimum, *percentiles, slope, skewness, kurtosis]
    )
