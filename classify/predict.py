"""Emotion probabilities of new clips (audio, video, transcripts), from the model ``evaluate`` saved.

The path of one clip: ``features.runner.extract_clip`` (the clip-level functionals and
streams the store holds, computed with the store's own feature configuration) -> the model's
input columns [and the word histogram of its STIP points, by the model's codebook] ->
[speaker adaptation with the enrolment clips' statistics] -> the fitted fusion pipeline ->
the classifier's ``predict_proba``: exactly the steps that were evaluated.
"""

from pathlib import Path

import numpy as np
import pandas as pd

from extract.errors import EmofuseError
from features.runner import extract_clip
from features.stip import DESCRIPTOR_NAMES
from fusion.run import STIP_POINTS

from .frames import frames_of
from .model import SavedModel

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".m4a"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".flv", ".webm"}


def load_model(path) -> SavedModel:
    """Read a ``model.joblib`` written by ``classify.evaluate.save_model``.

    Raises
    ------
    EmofuseError
        The file is missing or is not an emofuse model (of this version).
    """
    path = Path(path)
    if not path.is_file():
        raise EmofuseError(f"no model at {path}; run `make evaluate DATASET=...` first")
    model = SavedModel.read(path)
    if model is None:
        raise EmofuseError(f"{path}: not an emofuse model of this version; run `make evaluate` again")
    return model


def needed_modalities(fitted) -> set:
    """What a clip must carry for a ``FittedModel``: a subset of ``{"audio", "video", "text"}``."""
    return set(fitted.modalities)


def clip_features(audio_path, video_path, text, config: dict) -> tuple:
    """The functionals and streams of one new clip, computed as the store's were.

    Parameters
    ----------
    audio_path, video_path : str or None
    text : str or None
        The clip's transcript.
    config : dict
        The store's feature configuration.

    Returns
    -------
    functionals : dict
        family -> (values [shape=(d,)], names).
    streams : dict
        family -> features.stream.Stream (frame-level families, ``stip_points``).

    Raises
    ------
    EmofuseError
        A given modality failed (the message names the file).
    """
    result = extract_clip({"clip_id": "file", "audio_path": str(audio_path or ""),
                           "video_path": str(video_path or ""), "text": text or ""}, config)
    if result.failures:
        raise EmofuseError("; ".join(f"{path}: {message}" for _, path, message in result.failures))
    return ({family: (values, names) for family, (_, values, names) in result.functionals.items()},
            {family: stream for family, (_, stream) in result.streams.items()})


def model_inputs(fitted, features: dict, streams=None) -> np.ndarray:
    """The model's fusion input for one clip [shape=(1, d)] (``FittedModel.inputs``); a
    sequence model's: a list of the clip's frame sequence (``classify.frames.frames_of``).

    Parameters
    ----------
    fitted : classify.model.FittedModel
    features : dict
        family -> (values [shape=(d,)], names), as ``clip_features`` returns.
    streams : dict, optional
        family -> Stream; a STIP bag-of-words model reads ``stip_points``, a sequence model
        its frame-level families.
    """
    if fitted.frame_families:  # a sequence model: the clip's frames
        return [frames_of(streams or {}, list(fitted.frame_families), fitted.frame_families)]
    value_of = {name: value for values, names in features.values()
                for name, value in zip(names, np.ravel(values))}
    missing = [name for name in fitted.input_names if name not in value_of]
    if missing:
        raise EmofuseError(f"the file's features lack {len(missing)} of the model's "
                           f"{fitted.candidate.modality} inputs, e.g. {missing[:3]}")
    X = np.array([[value_of[name] for name in fitted.input_names]], dtype=np.float64)
    if fitted.stip_words is None:
        return fitted.inputs(X)
    stream = (streams or {}).get(STIP_POINTS)
    if stream is None:
        raise EmofuseError("the model encodes the clip's STIP points, and the file gave none")
    return fitted.inputs(X, [stream.values[:, [stream.names.index(n) for n in DESCRIPTOR_NAMES]]])


def _media_of(item: str, needed) -> tuple:
    """(audio path or None, video path or None) of one FILE argument, as the model needs them."""
    parts = [Path(p) for p in item.split("+")] if "+" in item and not Path(item).exists() else [Path(item)]
    for path in parts:
        if path.suffix.lower() not in AUDIO_SUFFIXES | VIDEO_SUFFIXES:
            raise EmofuseError(f"{path}: unknown file type {path.suffix.lower()!r}; give audio "
                               f"({', '.join(sorted(AUDIO_SUFFIXES))}) or video ({', '.join(sorted(VIDEO_SUFFIXES))})")
    videos = [p for p in parts if p.suffix.lower() in VIDEO_SUFFIXES]
    if "video" in needed and not videos:
        raise EmofuseError(f"{item}: the model uses video features, give a video file (or audio+video)")
    audio = next((p for p in parts if p.suffix.lower() in AUDIO_SUFFIXES), videos[0] if videos else None)
    return (str(audio) if "audio" in needed else None,
            str(videos[0]) if "video" in needed else None)


def enrolment_files(items, needed) -> list:
    """The enrolment clips of ``--enrol``: files as given, folders expanded to their media.

    A folder gives its video files when the model needs video, else its audio files (or
    videos when it has none), sorted by name.

    Raises
    ------
    EmofuseError
        A path that does not exist, or no media at all.
    """
    files = []
    for item in map(Path, items):
        if item.is_dir():
            media = sorted(p for p in item.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES | VIDEO_SUFFIXES)
            videos = [p for p in media if p.suffix.lower() in VIDEO_SUFFIXES]
            audio = [p for p in media if p.suffix.lower() in AUDIO_SUFFIXES]
            files += [str(p) for p in (videos if "video" in needed or not audio else audio)]
        elif item.exists() or "+" in item.name:
            files.append(str(item))
        else:
            raise EmofuseError(f"enrolment clip {item} does not exist")
    if not files:
        raise EmofuseError(f"no audio or video files among the enrolment clips {', '.join(map(str, items))}")
    return files


def _inputs(fitted, items, texts, config) -> np.ndarray:
    """Fusion inputs of clips: media ``items`` (FILE arguments, or None each) with ``texts``."""
    needed = needed_modalities(fitted)
    rows = []
    for item, text in zip(items, texts):
        media = _media_of(item, needed) if item is not None and needed - {"text"} else (None, None)
        if "text" in needed and not (text or "").strip():
            raise EmofuseError(f"{item or 'clip'}: the model reads text, give the clip's transcript (--text)")
        rows.append(model_inputs(fitted, *clip_features(*media, text if "text" in needed else None, config)))
    return [row[0] for row in rows] if fitted.frame_families else np.vstack(rows)


def predict_files(model: SavedModel, paths=(), *, texts=None, enrol=None) -> tuple:
    """Per-emotion probabilities of each clip.

    Parameters
    ----------
    model : SavedModel
        As ``load_model`` returns.
    paths : list of str or Path
        Audio files (wav, flac, ...) or videos with a sound track (mp4, ...), or an audio
        file and a video of the same clip joined by ``+`` (``take.wav+take.mp4``).  A video
        model needs videos; an audio model takes the sound track of a video.  Empty for a
        text-only model.
    texts : list of str, optional
        The clips' transcripts, one per path (or the clips themselves for a text-only
        model); required by a model that reads text.
    enrol : list of str or Path, optional
        Unlabelled clips (files or folders) of the speaker of ``paths``: the model's
        speaker-adaptive variant normalises with their statistics.

    Returns
    -------
    probabilities : pd.DataFrame [shape=(n_clips, n_emotions + 1)]
        Indexed by file (or transcript); one column per emotion (rows sum to 1) and ``predicted``.
    note : str or None
        Which variant was used when it is not the one asked for (no adaptive variant, or
        no enrolment clips for a model that has one).

    Raises
    ------
    EmofuseError
        No clip, transcripts that do not match the files one to one, or a clip that lacks
        what the model reads.
    """
    paths, texts = [str(p) for p in paths], list(texts or [])
    if not paths and not texts:
        raise EmofuseError("give the files to classify (and --text transcripts for a model that reads text)")
    if paths and texts and len(paths) != len(texts):
        raise EmofuseError(f"{len(texts)} transcripts for {len(paths)} files: give one --text per file")
    fitted, note = model.variant(enrolment=bool(enrol))
    if not paths and needed_modalities(fitted) - {"text"}:
        raise EmofuseError(f"the model reads {', '.join(fitted.modalities)}: give the clips' files")
    items = paths or [None] * len(texts)
    texts = texts or [None] * len(paths)
    enrolment = None
    if fitted.adaptive:
        if "text" in needed_modalities(fitted):
            raise EmofuseError("the speaker-adaptive model reads text, and enrolment clips carry no transcripts; "
                               "predict without --enrol")
        files = enrolment_files(enrol, needed_modalities(fitted))
        enrolment = _inputs(fitted, files, [None] * len(files), model.feature_config)
    labels, probabilities = fitted.predict_with_proba(_inputs(fitted, items, texts, model.feature_config), enrolment)
    table = pd.DataFrame(probabilities, columns=fitted.labels, index=paths or texts)
    table["predicted"] = labels
    return table, note
