"""What sequence classifiers read: a clip's frame-level streams, families side by side.

Sequence classifiers (``bilstm_sa``, ``omsn``, ...) take no fusion output: they read the
store's frame-level streams of a modality (audio: MFCC, energy, ZCR and pitch; video: HOG;
fused: both; text has none), resampled onto the frames of the slowest stream.  Their results
are labelled with method ``frames`` and with the families they consumed.
"""

import numpy as np

from extract.errors import EmofuseError

SEQUENCE_FAMILIES = {"audio": ("mfcc", "energy", "zcr", "pitch"), "video": ("hog",)}
"""Frame-level families a sequence classifier reads, per modality (text has none)."""
SEQUENCE_METHOD = "frames"
"""The method name of what sequence classifiers consume instead of a fusion output."""
SEQUENCE_CONSUMED = "frame-level streams of the store; the fusion method is not used"


def sequence_families(store, modality) -> list:
    """The families of ``SEQUENCE_FAMILIES`` that ``modality`` reads and the store holds."""
    stored = store.sequence_families()
    modalities = SEQUENCE_FAMILIES if modality == "fused" else (modality,)
    return [f for m in modalities for f in SEQUENCE_FAMILIES.get(m, ()) if f in stored]


def consumed(families) -> str:
    """The ``consumed`` label of a sequence result or candidate that read ``families``."""
    return f"{SEQUENCE_CONSUMED} ({', '.join(families)})"


def clip_sequences(store, clip_ids, modality) -> list:
    """Frame-level feature sequences of clips, the families of ``modality`` side by side.

    Parameters
    ----------
    store : FeatureStore
    clip_ids : array-like of str
    modality : {"audio", "video", "fused"}
        Audio: MFCC, energy, ZCR and pitch streams; video: HOG; fused: both.

    Returns
    -------
    sequences : list of np.ndarray [shape=(t_i, d), dtype=float32]
        As ``frames_of`` makes them, one per clip.
    """
    return clip_frames(store, clip_ids, sequence_families(store, modality))[0]


def clip_frames(store, clip_ids, families) -> tuple:
    """(sequences as ``clip_sequences`` returns them, {family: column count}) of ``families``."""
    streams = [{f: s for f in families if (s := _stream_or_none(store, str(clip_id), f)) is not None}
               for clip_id in clip_ids]
    widths = {f: s.values.shape[1] for row in streams for f, s in row.items()}
    widths = {f: widths[f] for f in families if f in widths}
    return [frames_of(row, families, widths, str(clip_id)) for clip_id, row in zip(clip_ids, streams)], widths


def frames_of(streams: dict, families, widths: dict, clip: str = "clip") -> np.ndarray:
    """One clip's sequence [shape=(t, sum of widths), dtype=float32] from its streams.

    On the frames of the clip's stream with the lowest frame rate (fused: the 30 fps video),
    each other stream is averaged over the frames that fall in each of those (NaN-aware, so
    a 100 fps audio stream gives the mean of about 3.3 frames).  A family the clip lacks (no
    video) and frames past a stream's end are NaN: the network imputes them.

    Parameters
    ----------
    streams : dict
        family -> features.stream.Stream of this clip (families it lacks are absent).
    families : sequence of str
        The families, in column order.
    widths : dict
        family -> its column count (for families the clip lacks).
    clip : str
        The clip's name in error messages.

    Raises
    ------
    EmofuseError
        The clip has none of ``families``.
    """
    present = [streams[f] for f in families if f in streams and len(streams[f].values)]
    if not present:
        raise EmofuseError(f"clip {clip} has none of the frame-level families {list(families)}")
    reference = min(present, key=lambda s: s.frame_rate)
    n_frames = len(reference.values)
    return np.hstack([
        _average_onto(streams[f], n_frames, reference.frame_rate) if f in streams
        else np.full((n_frames, widths[f]), np.nan, np.float32) for f in families])


def _stream_or_none(store, clip_id, family):
    try:
        return store.sequence(clip_id, family)
    except EmofuseError:  # the clip lacks this family (e.g. no face track)
        return None


def _average_onto(stream, n_frames: int, frame_rate: float) -> np.ndarray:
    """Mean of the stream's finite values within each of ``n_frames`` frames at ``frame_rate`` Hz
    (not above the stream's rate) [shape=(n_frames, d)]; NaN where a frame has none."""
    target = np.minimum((np.arange(len(stream.values)) * frame_rate / stream.frame_rate).astype(int), n_frames - 1)
    observed = np.isfinite(stream.values)
    sums = np.zeros((n_frames, stream.values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, target, np.where(observed, stream.values, 0.0))
    np.add.at(counts, target, observed)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)
