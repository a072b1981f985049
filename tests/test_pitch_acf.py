"""The autocorrelation pitch tracker (DV-EmotionNet's pitch) against signals with known F0."""

import numpy as np
import pytest

from extract.decode import load_audio
from features import audio
from features.errors import FeatureError
from features.functionals import functionals

SR = 16000
INTERIOR = slice(10, -10)  # frames whose windows lie wholly inside a 1 s signal


def harmonic(frequency, seconds=1.0, amplitudes=(0.3, 0.1)):
    time = np.arange(int(SR * seconds)) / SR
    waves = [a * np.sin(2 * np.pi * (k + 1) * frequency * time) for k, a in enumerate(amplitudes)]
    return np.sum(waves, axis=0).astype(np.float32)


@pytest.mark.parametrize("frequency", [80.0, 110.0, 220.0, 330.0, 450.0])
def test_pitch_of_a_harmonic_tone_is_its_fundamental_within_20_cents(frequency):
    f0, voiced = audio.pitch_autocorrelation(harmonic(frequency), SR)
    assert f0.shape == voiced.shape == (1 + SR // 160,)
    assert voiced[INTERIOR].all()
    cents = 1200 * np.log2(f0[INTERIOR] / frequency)
    # The window's taper biases the peak toward short lags: +17 cents at 80 Hz, +1 at 450 Hz.
    assert np.all(np.abs(cents) < 20)
    assert np.median(cents) >= 0


def test_missing_fundamental_is_found_from_its_harmonics():
    f0, voiced = audio.pitch_autocorrelation(harmonic(150.0, amplitudes=(0.0, 0.2, 0.2, 0.2)), SR)
    assert voiced[INTERIOR].all()
    np.testing.assert_allclose(np.median(f0[INTERIOR]), 150.0, rtol=0.01)


def test_pulse_train_gives_the_pulse_rate():
    y = np.zeros(SR, np.float32)
    y[::100] = 1.0  # 160 Hz
    f0, voiced = audio.pitch_autocorrelation(y, SR)
    np.testing.assert_allclose(f0[INTERIOR], 160.0, rtol=1e-3)


@pytest.mark.parametrize("signal", [np.zeros(SR, np.float32),
                                    (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)])
def test_silence_and_noise_are_unvoiced(signal):
    f0, voiced = audio.pitch_autocorrelation(signal, SR)
    assert not voiced.any()
    assert np.isnan(f0).all()


def test_voicing_threshold_and_range_are_respected():
    # A 600 Hz tone is outside 60-500 Hz: no frame may report it.
    f0, _ = audio.pitch_autocorrelation(harmonic(600.0, amplitudes=(0.3,)), SR)
    assert not np.any(np.abs(f0[np.isfinite(f0)] - 600.0) < 30)
    # Tone plus noise: a stricter threshold never voices more frames.
    noisy = harmonic(200.0) + (0.3 * np.random.default_rng(1).standard_normal(SR)).astype(np.float32)
    lenient = audio.pitch_autocorrelation(noisy, SR, voicing_threshold=0.2)[1].sum()
    strict = audio.pitch_autocorrelation(noisy, SR, voicing_threshold=0.8)[1].sum()
    assert lenient > strict
    with pytest.raises(FeatureError, match="voicing_threshold"):
        audio.pitch_autocorrelation(noisy, SR, voicing_threshold=1.5)


def test_pitch_acf_family_is_opt_in_and_summarised_over_voiced_frames():
    assert "pitch_acf" not in audio.DEFAULT_FAMILIES
    config = audio.AudioConfig(families=("pitch_acf",))
    stream = audio.audio_streams(harmonic(220.0), SR, config)["pitch_acf"]
    assert stream.names == ["f0_acf", "voiced_acf"]
    assert stream.frame_rate == 100
    values, names = functionals(stream)
    assert names[-1] == "voiced_acf_fraction" and "f0_acf_voiced_p50" in names
    assert abs(values[names.index("f0_acf_voiced_p50")] - 220.0) < 2.0


def test_real_speech_autocorrelation_agrees_with_yin(real_speech):
    """On real voices the two trackers agree on most voiced frames (median within 30 cents)."""
    for actor, low, high in (("01", 80, 180), ("02", 160, 330)):
        path = sorted((real_speech / f"Actor_{actor}").glob("*.flac"))[0]
        y = load_audio(path, sr=SR)
        f0_acf, voiced_acf = audio.pitch_autocorrelation(y, SR)
        f0_yin, voiced_yin = audio.pitch(y, SR, frame_length=1024)
        assert low < np.nanmedian(f0_acf) < high
        both = voiced_acf & voiced_yin
        assert both.sum() > 0.5 * voiced_yin.sum()
        cents = np.abs(1200 * np.log2(f0_acf[both] / f0_yin[both]))
        assert np.median(cents) < 30
