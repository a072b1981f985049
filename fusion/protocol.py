"""Evaluation protocols: which clips train and which test, fold by fold.

Speaker-independent folds are the default: no speaker is on both sides of a fold.  The
random 80/20 split many papers use is kept only to show how much it inflates results.
"""

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedShuffleSplit

from extract.errors import EmofuseError

PROTOCOLS = ("speaker", "loso", "random", "manifest")

RANDOM_SPLIT_WARNING = (
    "random 80/20 split of clips: the same speakers are on both sides, so scores are "
    "inflated and not comparable with speaker-independent results; for comparison only"
)
SPEAKER_OVERLAP_LABEL = "speaker-overlapping split (the corpus's own)"


@dataclass
class Fold:
    """One train/test partition of a corpus's clips.

    Attributes
    ----------
    fold : int
        Index of the fold, from 0.
    test_speakers : list of str
        Speakers with clips on the test side, sorted.
    train_ids, test_ids : list of str
        ``clip_id`` of the training and test clips, in clip-table order.
    """

    fold: int
    test_speakers: list
    train_ids: list
    test_ids: list

    def to_dict(self):
        """The fold as a JSON-serialisable dict (the ``folds.json`` entry)."""
        return asdict(self)


def make_folds(clips: pd.DataFrame, protocol: str = "speaker", seed: int = 0, n_folds=None):
    """Split a clip table into the folds of an evaluation protocol.

    Parameters
    ----------
    clips : pd.DataFrame
        One row per clip with columns ``clip_id``, ``speaker``, ``label`` and optionally
        ``gender`` (balanced across folds when present) and ``split`` (for ``manifest``).
    protocol : {"speaker", "loso", "random", "manifest"}
        ``speaker``: grouped k-fold over speakers, every speaker tested exactly once.
        ``loso``: leave one speaker out.  ``random``: one stratified 80/20 split of clips,
        speakers shared by both sides (for comparison only, see ``RANDOM_SPLIT_WARNING``).
        ``manifest``: the corpus's own ``split`` column; ``train`` and ``dev`` clips
        train (fusion has no tuning step that would use ``dev`` apart), ``test`` clips test.
    seed : int
        Seed of the speaker order within each gender (``speaker``) or of the random split.
    n_folds : int or None
        Number of ``speaker`` folds.  None picks about 4 speakers per fold, with at least
        4 and at most 10 folds (24 speakers -> 6 folds of 4; 8 -> 4 of 2; 4 -> 4 of 1).

    Returns
    -------
    folds : list of Fold
        Deterministic for a given table, protocol and seed.

    Raises
    ------
    EmofuseError
        Unknown protocol, fewer than two speakers, or a table the protocol cannot split.
    """
    missing = {"clip_id", "speaker", "label"} - set(clips.columns)
    if missing:
        raise EmofuseError(f"clip table lacks column(s) {sorted(missing)}")
    clips = clips.assign(clip_id=clips["clip_id"].astype(str), speaker=clips["speaker"].astype(str))
    if protocol in ("speaker", "loso"):
        n_speakers = clips["speaker"].nunique()
        if n_speakers < 2:
            raise EmofuseError(f"protocol {protocol!r} needs at least 2 speakers, got {n_speakers}")
        speaker_folds = _speaker_groups(clips, n_folds, seed) if protocol == "speaker" else [
            [s] for s in sorted(clips["speaker"].unique())
        ]
        test_masks = [clips["speaker"].isin(group).to_numpy() for group in speaker_folds]
    elif protocol == "random":
        test_masks = [_random_test_mask(clips, seed)]
    elif protocol == "manifest":
        test_masks = [_manifest_test_mask(clips)]
    else:
        raise EmofuseError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    ids = clips["clip_id"].to_numpy()
    speakers = clips["speaker"].to_numpy()
    return [
        Fold(
            fold=k,
            test_speakers=sorted(set(speakers[test])),
            train_ids=ids[~test].tolist(),
            test_ids=ids[test].tolist(),
        )
        for k, test in enumerate(test_masks)
    ]


def _speaker_groups(clips, n_folds, seed):
    """Deal speakers to folds round-robin, gender by gender, in a seeded order."""
    speakers = clips.groupby("speaker", sort=True).first()
    n_speakers = len(speakers)
    if n_folds is None:
        n_folds = min(n_speakers, int(np.clip(np.ceil(n_speakers / 4), 4, 10)))
    if not 2 <= n_folds <= n_speakers:
        raise EmofuseError(f"n_folds must be in [2, {n_speakers}] (the number of speakers), got {n_folds}")
    gender = speakers["gender"].fillna("").astype(str) if "gender" in speakers else pd.Series("", speakers.index)
    rng = np.random.default_rng(seed)
    # Dealing continues across genders, so fold sizes stay within one speaker of each other
    # and every fold gets its share of each gender.
    order = [s for g in sorted(gender.unique()) for s in rng.permutation(gender.index[gender == g].to_numpy())]
    groups = [[] for _ in range(n_folds)]
    for i, speaker in enumerate(order):
        groups[i % n_folds].append(speaker)
    return [sorted(group) for group in groups]


def _random_test_mask(clips, seed):
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=0.2, random_state=seed)
    try:
        _, test = next(splitter.split(np.zeros(len(clips)), clips["label"].astype(str)))
    except ValueError as err:
        raise EmofuseError(f"random protocol cannot split these clips: {err}") from err
    mask = np.zeros(len(clips), dtype=bool)
    mask[test] = True
    return mask


def _manifest_test_mask(clips):
    split = clips["split"].fillna("").astype(str).str.lower() if "split" in clips else None
    if split is None or not (split == "test").any() or not split.isin(["train", "dev"]).any():
        raise EmofuseError("manifest protocol needs a 'split' column with both train and test clips")
    unknown = sorted(set(split) - {"train", "dev", "test"})
    if unknown:
        raise EmofuseError(f"manifest protocol: unknown split value(s) {unknown}; expected train/dev/test")
    return (split == "test").to_numpy()


def shared_speakers(folds, clips: pd.DataFrame) -> list:
    """Speakers with clips on both sides of any fold, sorted (empty: speaker-independent).

    Parameters
    ----------
    folds : list of Fold or of dict
        As ``make_folds`` returns them, or their ``to_dict`` form (``folds.json``).
    clips : pd.DataFrame
        Clip table with ``clip_id`` and ``speaker``.
    """
    speaker_of = dict(zip(clips["clip_id"].astype(str), clips["speaker"].astype(str)))
    shared = set()
    for fold in folds:
        fold = fold if isinstance(fold, dict) else fold.to_dict()
        train = {speaker_of[i] for i in fold["train_ids"] if i in speaker_of}
        shared |= train & {speaker_of[i] for i in fold["test_ids"] if i in speaker_of}
    return sorted(shared)


def split_warning(protocol: str, shared: list):
    """The warning every output of a split that is not speaker-independent carries, or None.

    ``random``: ``RANDOM_SPLIT_WARNING``; a ``manifest`` (or any) split with speakers on both
    sides: ``SPEAKER_OVERLAP_LABEL`` and the speakers.
    """
    if protocol == "random":
        return RANDOM_SPLIT_WARNING
    if shared:
        named = ", ".join(shared[:5]) + (f" and {len(shared) - 5} more" if len(shared) > 5 else "")
        return (f"{SPEAKER_OVERLAP_LABEL}: speaker(s) {named} on both sides; scores are not "
                "speaker-independent")
    return None
