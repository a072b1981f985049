"""The opt-in ``waveform`` family: the decoded signal resampled for networks over raw samples."""

import numpy as np
import pytest
import soundfile as sf

from features import audio
from features.errors import FeatureError
from features.runner import config_hash, default_config, extract_clip

SR = 16000


def tone(frequency, seconds=1.0, amplitude=0.5):
    time = np.arange(int(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def test_a_tone_below_the_new_nyquist_keeps_its_frequency_amplitude_and_duration():
    y = audio.waveform(tone(1000.0), SR, target_sr=8000)
    assert y.dtype == np.float32 and y.shape == (8000,)
    interior = y[200:-200]  # away from the filter's edge transients
    assert np.sqrt(np.mean(interior**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)
    spectrum = np.abs(np.fft.rfft(y))
    assert np.fft.rfftfreq(len(y), 1 / 8000)[spectrum.argmax()] == pytest.approx(1000.0)


def test_content_above_the_new_nyquist_is_filtered_out_not_folded_back():
    y = audio.waveform(tone(6000.0), SR, target_sr=8000)  # would alias to 2 kHz
    assert np.sqrt(np.mean(y[200:-200] ** 2)) < 0.01 * 0.5


def test_odd_lengths_ratios_and_the_same_rate():
    assert audio.waveform(tone(440.0)[:1001], SR, target_sr=8000).shape == (501,)
    assert audio.waveform(tone(440.0), SR, target_sr=12000).shape == (12000,)
    y = tone(440.0)
    np.testing.assert_array_equal(audio.waveform(y, SR, target_sr=SR), y)


@pytest.mark.parametrize("rate", [0, 32000, 8000.5, True])
def test_a_bad_waveform_rate_is_refused(rate):
    with pytest.raises(FeatureError, match="waveform rate"):
        audio.AudioConfig(waveform_sr=rate)


def test_signal_streams_give_the_waveform_only_when_named():
    y = tone(440.0)
    assert audio.signal_streams(y, SR, audio.AudioConfig()) == {}
    stream = audio.signal_streams(y, SR, audio.AudioConfig(families=("waveform",)))["waveform"]
    assert stream.values.shape == (8000, 1) and stream.names == ["waveform"] and stream.frame_rate == 8000
    np.testing.assert_array_equal(stream.values[:, 0], audio.waveform(y, SR, target_sr=8000))


def test_its_rate_joins_the_configuration_only_with_the_family():
    assert "waveform_sr" not in audio.AudioConfig().to_dict()  # existing stores keep their hash
    config = audio.AudioConfig(families=("mfcc", "waveform"), waveform_sr=4000)
    assert config.to_dict()["waveform_sr"] == 4000 and audio.AudioConfig(**config.to_dict()) == config
    assert "waveform" not in audio.DEFAULT_FAMILIES
    assert config_hash(default_config(["mfcc", "waveform"])) != config_hash(default_config(["mfcc"]))


def test_the_runner_stores_the_waveform_stream_and_its_sample_statistics(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(440.0), SR)
    result = extract_clip({"clip_id": "tone", "audio_path": str(path), "video_path": ""}, default_config(["waveform"]))
    assert not result.failures
    modality, stream = result.streams["waveform"]
    assert modality == "audio" and stream.values.shape == (8000, 1)
    _, values, names = result.functionals["waveform"]
    std = values[names.index("waveform_std")]
    assert std == pytest.approx(0.5 / np.sqrt(2), rel=0.02)
