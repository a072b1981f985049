"""Emotion probabilities of new audio or video files, from the model ``evaluate`` saved.

The path of one file: ``features.runner.extract_file_features`` (the clip-level functionals
the store holds, computed with the store's own feature configuration) -> the model's input
columns, block by block -> each block's fusion transformer -> the classifier's
``predict_proba``.
"""

from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from extract.errors import EmofuseError
from features.runner import extract_file_features

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".mp3", ".m4a"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".flv", ".webm"}
MODEL_KEYS = ("blocks", "estimator", "labels", "feature_config")


def load_model(path) -> dict:
    """Read a ``model.joblib`` written by ``classify.evaluate.save_best_model``.

    Raises
    ------
    EmofuseError
        The file is missing or is not an emofuse model.
    """
    path = Path(path)
    if not path.is_file():
        raise EmofuseError(f"no model at {path}; run `make evaluate DATASET=...` first")
    model = joblib.load(path)
    if not isinstance(model, dict) or not set(MODEL_KEYS) <= model.keys():
        raise EmofuseError(f"{path}: not an emofuse model (needs keys {', '.join(MODEL_KEYS)})")
    return model


def needed_modalities(model: dict) -> set:
    """``{"audio"}``, ``{"video"}`` or both: what a file must carry for ``model``."""
    needed = {block["modality"] for block in model["blocks"]}
    return {"audio", "video"} if "fused" in needed else needed


def model_inputs(model: dict, features: dict) -> np.ndarray:
    """The classifier's input for one clip.

    Parameters
    ----------
    model : dict
        As ``load_model`` returns.
    features : dict
        family -> (values [shape=(d,)], names), as ``extract_file_features`` returns.

    Returns
    -------
    x : np.ndarray [shape=(1, d_out), dtype=float32]
        Each block's input columns (by name) through its fusion transformer, side by side.
    """
    value_of = {name: value for values, names in features.values()
                for name, value in zip(names, np.ravel(values))}
    outputs = []
    for block in model["blocks"]:
        missing = [name for name in block["input_names"] if name not in value_of]
        if missing:
            raise EmofuseError(f"the file's features lack {len(missing)} of the model's "
                               f"{block['modality']} inputs, e.g. {missing[:3]}")
        x = np.array([[value_of[name] for name in block["input_names"]]], dtype=np.float64)
        outputs.append(block["transformer"].transform(x) if block["transformer"] is not None else x)
    return np.hstack(outputs).astype(np.float32)


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


def predict_files(model: dict, paths) -> pd.DataFrame:
    """Per-emotion probabilities of each file.

    Parameters
    ----------
    model : dict
        As ``load_model`` returns.
    paths : list of str or Path
        Audio files (wav, flac, ...) or videos with a sound track (mp4, ...), or an audio
        file and a video of the same clip joined by ``+`` (``take.wav+take.mp4``).  A video
        model needs videos; an audio model takes the sound track of a video.

    Returns
    -------
    probabilities : pd.DataFrame [shape=(n_files, n_emotions + 1)]
        Indexed by file; one column per emotion (rows sum to 1) and ``predicted``.
    """
    needed = needed_modalities(model)
    rows = []
    for item in map(str, paths):
        audio, video = _media_of(item, needed)
        features = extract_file_features(audio, video, model["feature_config"])
        rows.append(model["estimator"].predict_proba(model_inputs(model, features))[0])
    table = pd.DataFrame(np.array(rows), columns=model["labels"], index=[str(p) for p in paths])
    table["predicted"] = table[model["labels"]].idxmax(axis=1)
    return table
