"""Emotion probabilities of new audio or video files, from the model ``evaluate`` saved.

The path of one file: ``features.runner.extract_file_features`` (the clip-level functionals
the store holds, computed with the store's own feature configuration) -> the model's input
columns -> [speaker adaptation with the enrolment clips' statistics] -> the fitted fusion
pipeline -> the classifier's ``predict_proba``: exactly the steps that were evaluated.
"""

from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from extract.errors import EmofuseError
from features.runner import extract_file_features

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
    model = joblib.load(path)
    if not isinstance(model, SavedModel):
        raise EmofuseError(f"{path}: not an emofuse model of this version; run `make evaluate` again")
    return model


def needed_modalities(fitted) -> set:
    """``{"audio"}``, ``{"video"}`` or both: what a file must carry for a ``FittedModel``."""
    modality = fitted.candidate.modality
    return {"audio", "video"} if modality == "fused" else {modality}


def model_inputs(fitted, features: dict) -> np.ndarray:
    """The model's input columns for one clip [shape=(1, len(fitted.input_names))].

    Parameters
    ----------
    fitted : classify.model.FittedModel
    features : dict
        family -> (values [shape=(d,)], names), as ``extract_file_features`` returns.
    """
    value_of = {name: value for values, names in features.values()
                for name, value in zip(names, np.ravel(values))}
    missing = [name for name in fitted.input_names if name not in value_of]
    if missing:
        raise EmofuseError(f"the file's features lack {len(missing)} of the model's "
                           f"{fitted.candidate.modality} inputs, e.g. {missing[:3]}")
    return np.array([[value_of[name] for name in fitted.input_names]], dtype=np.float64)


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


def _inputs(fitted, items, config) -> np.ndarray:
    needed = needed_modalities(fitted)
    rows = [model_inputs(fitted, extract_file_features(*_media_of(item, needed), config)) for item in items]
    return np.vstack(rows)


def predict_files(model: SavedModel, paths, *, enrol=None) -> tuple:
    """Per-emotion probabilities of each file.

    Parameters
    ----------
    model : SavedModel
        As ``load_model`` returns.
    paths : list of str or Path
        Audio files (wav, flac, ...) or videos with a sound track (mp4, ...), or an audio
        file and a video of the same clip joined by ``+`` (``take.wav+take.mp4``).  A video
        model needs videos; an audio model takes the sound track of a video.
    enrol : list of str or Path, optional
        Unlabelled clips (files or folders) of the speaker of ``paths``: the model's
        speaker-adaptive variant normalises with their statistics.

    Returns
    -------
    probabilities : pd.DataFrame [shape=(n_files, n_emotions + 1)]
        Indexed by file; one column per emotion (rows sum to 1) and ``predicted``.
    note : str or None
        Which variant was used when it is not the one asked for (no adaptive variant, or
        no enrolment clips for a model that has one).
    """
    fitted, note = model.variant(enrolment=bool(enrol))
    enrolment = _inputs(fitted, enrolment_files(enrol, needed_modalities(fitted)), model.feature_config) \
        if fitted.adaptive else None
    probabilities = fitted.predict_proba(_inputs(fitted, map(str, paths), model.feature_config), enrolment)
    table = pd.DataFrame(probabilities, columns=fitted.labels, index=[str(p) for p in paths])
    table["predicted"] = table[fitted.labels].idxmax(axis=1)
    return table, note
