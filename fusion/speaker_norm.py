"""Speaker normalisation, which is speaker adaptation: z-score each speaker's features with
that speaker's own statistics.

Normalising a test speaker uses unlabelled clips of that speaker, so a model evaluated this
way is *speaker-adaptive*, not a model meeting a new voice cold (Schuller et al. 2009, "Acoustic
emotion recognition: a benchmark comparison of performances", and the speaker-normalised
baselines since).  Three modes:

* ``none``: no normalisation;
* ``all``: a test speaker's statistics come from all of its clips (the usual protocol);
* ``enrol:K``: from ``K`` of its clips drawn without labels (seeded, per speaker), the
  *enrolment* clips, which are then not scored.

Training speakers are always normalised with their own (training) clips.  The output
directory of a fusion method carries the mode (``method_dir_name``), and every result that
uses it carries ``ADAPTIVE_LABEL``.
"""

import re
import warnings
import zlib

import numpy as np

from extract.errors import EmofuseError

ADAPTIVE_LABEL = "speaker-adaptive (unlabelled clips of the test speaker)"
MODES_HELP = "none, all or enrol:K (K unlabelled enrolment clips per test speaker)"
_DIR_SUFFIX = re.compile(r"^(?P<method>.+?)(?:-(?P<snorm>snorm)|-enrol(?P<k>[0-9]+))?$")


def parse_speaker_norm(value) -> str:
    """The canonical mode of a speaker-normalisation request.

    Parameters
    ----------
    value : None, bool or str
        None, False, ``"none"``, ``""`` -> ``"none"``; True, ``"all"`` -> ``"all"``;
        ``"enrol:K"`` (K >= 1) -> ``"enrol:K"``.

    Returns
    -------
    mode : str

    Raises
    ------
    EmofuseError
        Any other value.
    """
    if value is None or value is False or value in ("", "none"):
        return "none"
    if value is True or value == "all":
        return "all"
    match = re.fullmatch(r"enrol:([0-9]+)", str(value))
    if match and int(match.group(1)) >= 1:
        return f"enrol:{int(match.group(1))}"
    raise EmofuseError(f"unknown speaker normalisation {value!r}; use {MODES_HELP}")


def enrol_count(mode: str):
    """``K`` of an ``enrol:K`` mode, else None."""
    return int(mode.split(":")[1]) if mode.startswith("enrol:") else None


def method_dir_name(method: str, mode) -> str:
    """The fused-output directory of ``method`` under a normalisation mode.

    ``concat`` (none), ``concat-snorm`` (all clips), ``concat-enrol8`` (``enrol:8``).
    """
    mode = parse_speaker_norm(mode)
    if mode == "none":
        return method
    return f"{method}-snorm" if mode == "all" else f"{method}-enrol{enrol_count(mode)}"


def parse_method_dir(name: str) -> tuple:
    """Inverse of ``method_dir_name``: ``(method, mode)`` of a directory name."""
    match = _DIR_SUFFIX.match(name)
    if match.group("snorm"):
        return match.group("method"), "all"
    if match.group("k"):
        return match.group("method"), f"enrol:{int(match.group('k'))}"
    return name, "none"


def enrolment_mask(ids, speakers, k: int, *, among=None, seed: int = 0) -> np.ndarray:
    """Which clips are each speaker's ``k`` enrolment clips: drawn without labels.

    The draw depends only on the seed, the speaker's name and its clip ids (sorted), so it
    is the same in every fold, modality and run.

    Parameters
    ----------
    ids, speakers : array-like of str [shape=(n_clips,)]
    k : int
    among : np.ndarray [shape=(n_clips,), dtype=bool] or None
        Speakers to draw for (a fold's test clips); None: every speaker.
    seed : int

    Returns
    -------
    mask : np.ndarray [shape=(n_clips,), dtype=bool]

    Raises
    ------
    EmofuseError
        A speaker with ``k`` clips or fewer: none would be left to score.
    """
    ids, speakers = np.asarray(ids).astype(str), np.asarray(speakers).astype(str)
    among = np.ones(len(ids), bool) if among is None else np.asarray(among, bool)
    mask = np.zeros(len(ids), bool)
    for speaker in np.unique(speakers[among]):
        rows = np.flatnonzero(among & (speakers == speaker))
        if len(rows) <= k:
            raise EmofuseError(f"speaker {speaker} has {len(rows)} clip(s): enrol:{k} would leave none to score")
        rows = rows[np.argsort(ids[rows], kind="stable")]
        rng = np.random.default_rng([seed, zlib.crc32(speaker.encode())])
        mask[rng.choice(rows, size=k, replace=False)] = True
    return mask


def adapt(X, ids, speakers, train, test, mode, *, seed: int = 0):
    """Normalise the rows of one train/test split under ``mode``.

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, d)]
    ids, speakers : array-like of str [shape=(n_clips,)]
    train, test : np.ndarray [shape=(n_clips,), dtype=bool]
        The split's sides (other rows are left as they are).
    mode : str
        See ``parse_speaker_norm``.
    seed : int
        Seed of the enrolment draw.

    Returns
    -------
    Z : np.ndarray [shape=(n_clips, d)]
        ``X`` with the split's rows normalised (a copy; ``X`` itself when ``mode`` is none).
    scored : np.ndarray [shape=(n_clips,), dtype=bool]
        The test rows that are scored: ``test`` less the enrolment clips.
    """
    mode = parse_speaker_norm(mode)
    if mode == "none":
        return X, test
    speakers = np.asarray(speakers).astype(str)
    reference = train.copy()
    scored = test
    k = enrol_count(mode)
    if k is not None:
        enrol = enrolment_mask(ids, speakers, k, among=test & ~np.isin(speakers, speakers[train]), seed=seed)
        reference |= enrol
        scored = test & ~enrol
    rows = train | test
    Z = np.array(X, dtype=np.float64, copy=True)
    Z[rows] = speaker_zscore(Z[rows], speakers[rows], reference=reference[rows])
    return Z, scored


def speaker_statistics(X):
    """Per-column mean and deviation of one speaker's rows [shape=(n, d)], NaN-aware.

    Returns
    -------
    mean, scale : np.ndarray [shape=(d,)]
        ``scale`` is the standard deviation, or 1 where a column is constant.
    """
    X = np.asarray(X, dtype=np.float64)
    with warnings.catch_warnings():  # a column with no value for this speaker stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(X, axis=0)
        std = np.nanstd(X, axis=0)
    return mean, np.where(std > 1e-12 * (1.0 + np.abs(mean)), std, 1.0)


def speaker_zscore(X, speakers, reference=None):
    """Standardise every speaker's rows with the mean and deviation of that speaker alone.

    The statistics use no labels and no other speaker: an unsupervised, per-speaker
    preprocessing that removes speaker traits (voice pitch range, face shape) which
    otherwise dominate emotion cues.  Applied to a test speaker it adapts the model to
    that speaker (``ADAPTIVE_LABEL``).

    Parameters
    ----------
    X : np.ndarray [shape=(n_clips, d)]
        Clip-level features; NaN marks missing values and is kept.
    speakers : array-like [shape=(n_clips,)]
        Speaker of each row.
    reference : np.ndarray [shape=(n_clips,), dtype=bool] or None
        Rows whose values give a speaker's statistics, for each speaker that has such rows
        (others use all their rows): a fold's training rows (a speaker on both sides of a
        random split is then normalised with its training clips only), plus the enrolment
        clips of ``enrol:K``.  None: all rows.

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
        mean, scale = speaker_statistics(X[source])
        Z[rows] = (X[rows] - mean) / scale
    return Z.astype(np.float32)
