"""Audio as images: a clip's mel spectrogram and chromagram stacked as a fixed-size 2-channel image.

MM-EMOR (Adel et al. 2023) draws the librosa mel spectrogram and chromagram of each clip as
2-D images, "merges" them and feeds a MobileNet.  The paper states none of the parameters;
emofuse takes the audio stage's own streams (:mod:`features.audio`), so an image can be made
from decoded audio or from the ``mel`` and ``chroma`` streams of the feature store, and the
two give the same image:

- sample rate 16 kHz (``AudioConfig.sr``);
- mel: Slaney mel filters, 64 bands from 0 to 8 kHz, over the power spectrum of 25 ms Hann
  windows (n_fft = 400) every 10 ms (hop 160), in dB (``features.audio.log_mel``);
- chroma: 12 pitch classes from 96 ms windows (n_fft = 1536), same 10 ms hop, each frame
  scaled to a maximum of 1 (``features.audio.chroma``);
- dB scaling: relative to the clip's loudest mel cell, clipped at ``-top_db`` (80 dB, librosa's
  ``power_to_db(ref=np.max, top_db=80)``) and mapped linearly to [0, 1];
- combined as two channels of one image [shape=(2, height, width)]: channel 0 the scaled
  mel spectrogram, channel 1 the chromagram with each pitch class repeated over
  ``height / 12`` rows (nearest-neighbour; row ``i`` shows class ``floor(12 i / height)``),
  low frequencies / C at row 0;
- fixed width: ``"stretch"`` (default) resamples the time axis linearly to ``width``
  columns, as a saved plot of the whole clip does (the clip's duration is lost); ``"pad"``
  keeps 10 ms per column, cropping longer clips at the end and padding shorter ones with
  zeros (silence in both channels).
"""

import dataclasses

import numpy as np

from features.audio import AudioConfig, chroma, log_mel
from features.errors import FeatureError

IMAGE_CHANNELS = ("mel", "chroma")


@dataclasses.dataclass(frozen=True)
class ImageConfig:
    """Size and scaling of the spectrogram images.

    Attributes
    ----------
    height : int
        Rows; equals the number of mel bands (``AudioConfig.n_mels``, 64) when built from the
        store's streams.
    width : int
        Columns (time).
    top_db : float
        Dynamic range of the mel channel (dB below the clip's maximum shown as 0).
    fit : {"stretch", "pad"}
        How a clip of any duration becomes ``width`` columns (module docstring).
    """

    height: int = 64
    width: int = 128
    top_db: float = 80.0
    fit: str = "stretch"

    def __post_init__(self):
        if self.height < 12 or self.width < 1:
            raise FeatureError(f"ImageConfig needs height >= 12 and width >= 1, got {self.height} x {self.width}")
        if not self.top_db > 0:
            raise FeatureError(f"ImageConfig.top_db must be positive, got {self.top_db}")
        if self.fit not in ("stretch", "pad"):
            raise FeatureError(f"ImageConfig.fit must be stretch or pad, got {self.fit!r}")


def spectrogram_image(mel_db, pitch_classes, config: ImageConfig = ImageConfig()) -> np.ndarray:
    """Stack a log-mel spectrogram and a chromagram into one image.

    Parameters
    ----------
    mel_db : np.ndarray [shape=(n_mels, t)]
        Mel band energies in dB (any reference); ``n_mels`` must equal ``config.height``.
    pitch_classes : np.ndarray [shape=(12, t)]
        Chromagram in [0, 1], on the same frames.
    config : ImageConfig

    Returns
    -------
    np.ndarray [shape=(2, height, width), dtype=float32]
        Values in [0, 1]; channel 0 mel, channel 1 chroma.
    """
    mel_db = np.asarray(mel_db, dtype=np.float64)
    pitch_classes = np.asarray(pitch_classes, dtype=np.float64)
    if mel_db.ndim != 2 or mel_db.shape[0] != config.height or mel_db.shape[1] < 1:
        raise FeatureError(f"mel spectrogram of shape {mel_db.shape}; expected ({config.height}, t >= 1)")
    if pitch_classes.shape != (12, mel_db.shape[1]):
        raise FeatureError(f"chromagram of shape {pitch_classes.shape}; expected (12, {mel_db.shape[1]})")
    if not (np.isfinite(mel_db).all() and np.isfinite(pitch_classes).all()):
        raise FeatureError("mel spectrogram or chromagram has NaN or infinite values")
    mel = (np.maximum(mel_db - mel_db.max(), -config.top_db) + config.top_db) / config.top_db
    rows = (np.arange(config.height) * 12) // config.height
    image = np.stack([mel, np.clip(pitch_classes, 0.0, 1.0)[rows]])
    return _fit_width(image, config.width, config.fit).astype(np.float32)


def audio_image(y, sr, config: ImageConfig = ImageConfig(), audio: AudioConfig = AudioConfig()) -> np.ndarray:
    """The spectrogram image of a decoded clip.

    Parameters
    ----------
    y : np.ndarray [shape=(n,)]
        Mono signal at ``audio.sr``.
    sr : int
        Its sampling rate (Hz); must equal ``audio.sr``.
    config : ImageConfig
    audio : AudioConfig
        Framing of the mel and chroma streams (``n_mels`` must equal ``config.height``).

    Returns
    -------
    np.ndarray [shape=(2, height, width), dtype=float32]
    """
    if sr != audio.sr:
        raise FeatureError(f"signal at {sr} Hz; the image needs {audio.sr} Hz (decode with load_audio(sr=...))")
    mel_db = log_mel(y, sr, n_mels=audio.n_mels, frame_length=audio.frame_length, hop_length=audio.hop_length)
    pitch = chroma(y, sr, frame_length=audio.chroma_frame_length, hop_length=audio.hop_length)
    return spectrogram_image(mel_db, pitch, config)


def store_images(store, clip_ids, config: ImageConfig = ImageConfig()) -> np.ndarray:
    """Spectrogram images of stored clips, from the store's ``mel`` and ``chroma`` streams.

    Parameters
    ----------
    store : features.store.FeatureStore
    clip_ids : sequence of str
    config : ImageConfig

    Returns
    -------
    np.ndarray [shape=(len(clip_ids), 2, height, width), dtype=float32]
    """
    missing = [f for f in IMAGE_CHANNELS if f not in store.sequence_families()]
    if missing:
        raise FeatureError(f"{store.path}: no {', '.join(missing)} streams; extract with the families mel,chroma")
    images = np.empty((len(clip_ids), 2, config.height, config.width), np.float32)
    for i, clip_id in enumerate(clip_ids):
        images[i] = spectrogram_image(store.sequence(clip_id, "mel").values.T,
                                      store.sequence(clip_id, "chroma").values.T, config)
    return images


def _fit_width(image, width, fit):
    """``image [shape=(c, h, t)]`` -> ``[shape=(c, h, width)]`` by linear resampling or crop/pad."""
    t = image.shape[2]
    if fit == "pad":
        fitted = np.zeros(image.shape[:2] + (width,))
        fitted[:, :, : min(t, width)] = image[:, :, :width]
        return fitted
    if t == 1:
        return np.repeat(image, width, axis=2)
    # Column j samples the clip at frame j (t - 1) / (width - 1): first and last frames kept.
    position = np.linspace(0.0, t - 1, width)
    left = np.minimum(position.astype(int), t - 2)
    weight = position - left
    return image[:, :, left] * (1 - weight) + image[:, :, left + 1] * weight
