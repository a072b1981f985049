"""features.dsp against librosa 0.11 and scipy.signal, which it replaces in extraction: equal bit for bit."""

import librosa
import numpy as np
import pytest
import scipy.signal

from features import dsp

RNG = np.random.default_rng(0)
SIGNALS = {
    "float32 noise": (0.1 * RNG.standard_normal(4003)).astype(np.float32),
    "float64 noise": RNG.standard_normal(2501),
    "float32 tone": np.sin(2 * np.pi * 220 * np.arange(3200) / 16000).astype(np.float32),
    "silence": np.zeros(1600, np.float32),
}


@pytest.mark.parametrize("name", SIGNALS)
@pytest.mark.parametrize(("frame_length", "hop_length"), [(400, 160), (1536, 160), (512, 512), (400, 1)])
def test_frames_and_power_spectrogram_equal_librosa(name, frame_length, hop_length):
    y = np.pad(SIGNALS[name], frame_length // 2)
    frames = dsp.frame(y, frame_length, hop_length)
    expected = librosa.util.frame(y, frame_length=frame_length, hop_length=hop_length)
    assert frames.shape == expected.shape == (frame_length, 1 + (len(y) - frame_length) // hop_length)
    assert np.array_equal(frames, expected)
    power = dsp.power_spectrogram(frames)
    reference = np.abs(librosa.stft(y, n_fft=frame_length, hop_length=hop_length, center=False)) ** 2
    assert power.dtype == reference.dtype == y.dtype
    assert np.array_equal(power, reference)


@pytest.mark.parametrize(("sr", "n_fft", "n_mels"), [(16000, 400, 64), (16000, 400, 40), (22050, 2048, 128),
                                                     (8000, 256, 26)])
def test_mel_filters_equal_librosa(sr, n_fft, n_mels):
    weights = dsp.mel_filters(float(sr), n_fft, n_mels)
    expected = librosa.filters.mel(sr=float(sr), n_fft=n_fft, n_mels=n_mels)
    assert weights.dtype == expected.dtype == np.float32
    assert np.array_equal(weights, expected)
    np.testing.assert_array_equal(dsp.hz_to_mel(np.array([0.0, 500.0, 1000.0, 4000.0])),
                                  librosa.hz_to_mel(np.array([0.0, 500.0, 1000.0, 4000.0])))
    assert dsp.hz_to_mel(np.array([1000.0]))[0] == pytest.approx(15.0)  # 3 mels per 200 Hz up to 1 kHz


@pytest.mark.parametrize(("sr", "n_fft"), [(16000, 1536), (16000, 400), (22050, 4096)])
def test_chroma_filters_equal_librosa(sr, n_fft):
    weights = dsp.chroma_filters(float(sr), n_fft)
    expected = librosa.filters.chroma(sr=float(sr), n_fft=n_fft, tuning=0.0)
    assert weights.shape == (12, 1 + n_fft // 2)
    assert np.array_equal(weights, expected)


def test_normalise_db_and_delta_equal_librosa():
    S = np.abs(RNG.standard_normal((12, 50))).astype(np.float32)
    S[:, 7] = 0  # a silent frame stays 0
    normalised = dsp.max_normalise(S, axis=0)
    assert np.array_equal(normalised, librosa.util.normalize(S, norm=np.inf, axis=0))
    assert np.all(normalised[:, 7] == 0) and np.allclose(normalised.max(axis=0)[np.arange(50) != 7], 1)
    power = np.abs(RNG.standard_normal((64, 30))).astype(np.float32) ** 4
    assert np.array_equal(dsp.power_to_db(power, amin=1e-10), librosa.power_to_db(power, amin=1e-10, top_db=None))
    data = RNG.standard_normal((13, 40)).astype(np.float32)
    for order in (1, 2):
        for mode, frames in (("interp", data), ("nearest", data[:, :5])):
            assert np.array_equal(dsp.delta(frames, width=9, order=order, mode=mode),
                                  librosa.feature.delta(frames, width=9, order=order, mode=mode))


@pytest.mark.parametrize("n", [4, 400, 512, 1536, 2049])
def test_hann_equals_scipy(n):
    window = dsp.hann(n)
    assert np.array_equal(window, scipy.signal.get_window("hann", n, fftbins=True))
    assert window[0] == 0 and window[n // 2] == pytest.approx(1.0, abs=1e-5)  # zero at the ends, 1 mid-window


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("width", "order", "frames"), [(9, 1, 40), (9, 2, 40), (9, 1, 9), (5, 1, 301), (5, 2, 12)])
def test_delta_equals_savgol_filter(dtype, width, order, frames):
    data = RNG.standard_normal((13, frames)).astype(dtype)
    derivative = dsp.delta(data, width=width, order=order, mode="interp")
    assert derivative.dtype == dtype
    assert np.array_equal(derivative, scipy.signal.savgol_filter(data, width, order, deriv=order, mode="interp"))
    short = data[:, : width - 2]
    assert np.array_equal(dsp.delta(short, width=width, order=order, mode="nearest"),
                          scipy.signal.savgol_filter(short, width, order, deriv=order, mode="nearest"))
    ramp = np.tile(np.arange(frames, dtype=dtype) * 0.5, (2, 1))  # slope 0.5 per frame, edges included
    np.testing.assert_allclose(dsp.delta(ramp, width=width, order=1, mode="interp"), 0.5, rtol=1e-4)
