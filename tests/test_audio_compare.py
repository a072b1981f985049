"""The opt-in ComParE 2016 audio family (openSMILE)."""

import numpy as np
import pytest

from features.audio import DEFAULT_FAMILIES, AudioConfig, clip_features, compare
from features.errors import FeatureError


def tone(amplitude, f0=220.0, sr=16000, seconds=1.0):
    t = np.arange(int(sr * seconds)) / sr
    return (amplitude * np.sin(2 * np.pi * f0 * t)).astype(np.float32)


def test_compare_functionals_of_a_tone_have_its_energy_and_pitch():
    values, names = compare(tone(0.1), 16000)
    assert values.shape == (6373,) and values.dtype == np.float32 and len(names) == 6373
    assert np.isfinite(values).all()
    by_name = dict(zip(names, values))
    # RMS of a sine of amplitude A is A / sqrt(2)
    np.testing.assert_allclose(by_name["pcm_RMSenergy_sma_amean"], 0.1 / np.sqrt(2), rtol=1e-3)
    np.testing.assert_allclose(by_name["F0final_sma_amean"], 220.0, rtol=0.01)
    louder = dict(zip(*compare(tone(0.4), 16000)[::-1]))
    np.testing.assert_allclose(louder["pcm_RMSenergy_sma_amean"], 4 * by_name["pcm_RMSenergy_sma_amean"], rtol=1e-3)


def test_compare_is_opt_in_and_computed_when_named():
    assert "compare" not in DEFAULT_FAMILIES
    y = tone(0.1, seconds=0.6)
    assert "compare" not in clip_features(y, 16000, AudioConfig())
    features = clip_features(y, 16000, AudioConfig(families=("mfcc", "compare")))
    assert list(features) == ["compare"] and features["compare"][0].shape == (6373,)
    with pytest.raises(FeatureError, match="signal is empty"):
        compare(np.zeros(0, np.float32), 16000)
