"""Spectrogram images: known tones land in known rows, fixed sizes, both front ends agree."""

import numpy as np
import pytest

from features.audio import AudioConfig, audio_streams
from features.errors import FeatureError
from features.images import ImageConfig, audio_image, spectrogram_image, store_images

SR = 16000


def tone(freq, seconds, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return 0.5 * np.sin(2 * np.pi * freq * t)


def test_a440_lights_the_a_rows_and_its_mel_band():
    image = audio_image(tone(440.0, 1.0), SR)
    assert image.shape == (2, 64, 128) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() <= 1.0
    chroma_rows = image[1].mean(axis=1)
    a_rows = (np.arange(64) * 12) // 64 == 9  # pitch class A
    assert chroma_rows[a_rows].min() > 0.99 and chroma_rows[~a_rows].max() < 0.7
    mel_rows = image[0].mean(axis=1)
    import librosa
    centres = librosa.mel_frequencies(64 + 2, fmax=SR / 2)[1:-1]
    assert abs(centres[np.argmax(mel_rows)] - 440.0) < 80.0
    assert image[0].max() == pytest.approx(1.0)


def test_stretch_keeps_time_order_and_pad_keeps_duration():
    y = np.concatenate([tone(1000.0, 0.5), np.zeros(SR // 2)])
    stretched = audio_image(y, SR)
    loud = stretched[0].mean(axis=0)
    assert loud[:60].min() > loud[70:].max()
    padded = audio_image(y[: SR // 4], SR, ImageConfig(fit="pad"))  # 0.25 s -> 26 frames of 10 ms
    columns = padded.reshape(-1, 128).max(axis=0)
    assert (columns[:26] > 0).all() and (columns[26:] == 0).all()
    assert audio_image(tone(300.0, 3.0), SR, ImageConfig(fit="pad", width=100)).shape == (2, 64, 100)


def test_stretch_is_linear_interpolation_of_frames():
    mel = np.tile(np.linspace(-80.0, 0.0, 5), (64, 1))  # 5 frames rising 20 dB each
    image = spectrogram_image(mel, np.zeros((12, 5)), ImageConfig(width=9))
    np.testing.assert_allclose(image[0, 0], np.linspace(0.0, 1.0, 9), atol=1e-6)


class StreamStore:
    """The two calls store_images makes of a FeatureStore, on streams computed here."""

    path = "memory"

    def __init__(self, clips):
        self.streams = {c: audio_streams(y, SR, AudioConfig(families=("mel", "chroma"))) for c, y in clips.items()}

    def sequence_families(self):
        return ["mel", "chroma"]

    def sequence(self, clip_id, family):
        return self.streams[clip_id][family]


def test_store_streams_give_the_decoded_audio_image():
    rng = np.random.default_rng(0)
    clips = {"a": tone(220.0, 0.7) + 0.01 * rng.standard_normal(int(0.7 * SR)), "b": tone(523.0, 1.3)}
    images = store_images(StreamStore(clips), ["b", "a"])
    assert images.shape == (2, 2, 64, 128)
    np.testing.assert_allclose(images[0], audio_image(clips["b"], SR), atol=1e-5)
    np.testing.assert_allclose(images[1], audio_image(clips["a"], SR), atol=1e-5)


def test_bad_shapes_are_refused():
    with pytest.raises(FeatureError, match=r"expected \(64, t >= 1\)"):
        spectrogram_image(np.zeros((40, 10)), np.zeros((12, 10)))
    with pytest.raises(FeatureError, match=r"expected \(12, 10\)"):
        spectrogram_image(np.zeros((64, 10)), np.zeros((12, 9)))
    with pytest.raises(FeatureError, match="22050 Hz"):
        audio_image(tone(440.0, 0.5, 22050), 22050)
    with pytest.raises(FeatureError, match="stretch or pad"):
        ImageConfig(fit="tile")
