"""Audio feature families against signals whose answers are known."""

import json
import librosa
import numpy as np
import opensmile
import pytest

from extract.errors import EmofuseError
from features import audio
from features.errors import FeatureError
from features.functionals import functionals

SR = 16000
HOP = 160


def tone(frequency, seconds=1.0, amplitude=0.3):
    time = np.arange(int(SR * seconds)) / SR
    return (amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def white_noise(n_samples=SR, seed=0):
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal(n_samples)).astype(np.float32)


SILENCE = np.zeros(SR // 2, dtype=np.float32)
INTERIOR = slice(10, -10)  # frames whose windows lie wholly inside a 1 s signal


@pytest.mark.parametrize("frequency", [110.0, 220.0, 330.0])
def test_pitch_of_a_tone_is_its_frequency_and_voiced(frequency):
    f0, voiced = audio.pitch(tone(frequency), SR)
    assert f0.shape == voiced.shape == (1 + SR // HOP,)
    assert voiced[INTERIOR].all()
    np.testing.assert_allclose(f0[INTERIOR], frequency, rtol=0.01)


@pytest.mark.parametrize("signal", [white_noise(), SILENCE], ids=["noise", "silence"])
def test_noise_and_silence_are_unvoiced_with_nan_pitch(signal):
    f0, voiced = audio.pitch(signal, SR)
    assert voiced.mean() < 0.02
    assert np.isnan(f0[~voiced]).all()


def test_pitch_range_follows_fmin_and_fmax():
    # A 600 Hz tone is above fmax=500: YIN may only report a period inside the range.
    f0, voiced = audio.pitch(tone(600.0), SR, fmin=60.0, fmax=500.0)
    assert np.all((f0[voiced] >= 60.0 * 0.98) & (f0[voiced] <= 500.0 * 1.02))


@pytest.mark.parametrize(
    "frequency, pitch_class", [(220.0, "A"), (261.63, "C"), (392.0, "G"), (329.63, "E")]
)
def test_chroma_of_a_tone_peaks_at_its_pitch_class(frequency, pitch_class):
    pitch_classes = audio.chroma(tone(frequency), SR)
    assert pitch_classes.shape == (12, 1 + SR // HOP)
    peaks = pitch_classes[:, INTERIOR].argmax(axis=0)
    assert np.all(peaks == audio.CHROMA_NAMES.index(pitch_class))
    np.testing.assert_allclose(pitch_classes[:, INTERIOR].max(axis=0), 1.0)


def test_zero_crossing_rate_of_noise_tone_and_silence():
    assert audio.zero_crossing_rate(white_noise(), SR).shape == (1, 1 + SR // HOP)
    noise_rate = audio.zero_crossing_rate(white_noise(), SR)[0, INTERIOR]
    assert abs(noise_rate.mean() - 0.5) < 0.02
    # A tone of frequency f changes sign 2 f times per second.
    tone_rate = audio.zero_crossing_rate(tone(220.0), SR)[0, INTERIOR]
    np.testing.assert_allclose(tone_rate, 2 * 220 / SR, atol=1.5 / 400)
    assert np.all(audio.zero_crossing_rate(SILENCE, SR) == 0)


def test_energy_of_a_tone_and_of_silence():
    rms, log_energy = audio.energy(tone(220.0, amplitude=0.3), SR)[:, INTERIOR]
    np.testing.assert_allclose(rms, 0.3 / np.sqrt(2), rtol=0.01)
    np.testing.assert_allclose(log_energy, 20 * np.log10(0.3 / np.sqrt(2)), atol=0.1)
    silent_rms, silent_log_energy = audio.energy(SILENCE, SR)
    assert np.all(silent_rms == 0)
    assert np.all(silent_log_energy == audio.FLOOR_DB)


def test_log_mel_of_silence_is_the_floor_and_a_tone_peaks_in_its_band():
    assert np.all(audio.log_mel(SILENCE, SR) == audio.FLOOR_DB)
    spectrum = audio.log_mel(tone(1000.0), SR, n_mels=64)
    centres = librosa.mel_frequencies(n_mels=64 + 2, fmax=SR / 2)[1:-1]
    peak_band = spectrum[:, INTERIOR].argmax(axis=0)
    assert np.all(np.abs(centres[peak_band] - 1000.0) < 100.0)


def test_mfcc_shape_and_deltas_of_a_stationary_signal_vanish():
    # Period 80 samples divides the hop: every frame sees the same samples.
    time = np.arange(SR) / SR
    periodic = 0.3 * np.sin(2 * np.pi * 200 * time) + 0.1 * np.sin(2 * np.pi * 400 * time)
    coefficients = audio.mfcc(periodic.astype(np.float32), SR, n_mfcc=13)
    assert coefficients.shape == (39, 1 + SR // HOP)
    assert np.abs(coefficients[:13, INTERIOR]).max() > 1.0
    np.testing.assert_allclose(coefficients[13:, INTERIOR], 0.0, atol=1e-3)


def test_delta_of_a_ramp_is_its_slope_at_every_frame():
    frames = np.arange(30, dtype=float)
    ramp = np.stack([2.5 * frames - 4.0, -0.5 * frames])
    np.testing.assert_allclose(audio.delta(ramp), np.gradient(ramp, axis=1), atol=1e-9)
    np.testing.assert_allclose(audio.delta(ramp, order=2), 0.0, atol=1e-9)
    # Shorter than the window: still defined, same shape.
    assert audio.delta(ramp[:, :4]).shape == (2, 4)


@pytest.mark.parametrize("n_samples", [1, 159, 160, 161, 4321, SR + 1])
def test_every_stream_has_the_same_clock(n_samples):
    config = audio.AudioConfig()
    streams = audio.audio_streams(white_noise(n_samples), SR, config)
    assert set(streams) == {"mfcc", "zcr", "pitch", "energy", "chroma", "mel"}
    for stream in streams.values():
        assert stream.values.shape[0] == 1 + n_samples // HOP
        assert stream.frame_rate == SR / HOP
    widths = {family: stream.values.shape[1] for family, stream in streams.items()}
    assert widths == {"mfcc": 120, "zcr": 1, "pitch": 2, "energy": 2, "chroma": 12, "mel": 64}
    names = [name for stream in streams.values() for name in stream.names]
    assert len(names) == len(set(names))
    assert {"mfcc_3", "mfcc_3_delta", "mfcc_3_delta2", "f0", "voiced", "chroma_A"} <= set(names)


def test_a_silent_clip_is_finite_except_unvoiced_f0():
    streams = audio.audio_streams(SILENCE, SR, audio.AudioConfig())
    for family, stream in streams.items():
        if family != "pitch":
            assert np.isfinite(stream.values).all(), family
    f0, voiced = streams["pitch"].values.T
    assert np.isnan(f0).all() and np.all(voiced == 0)


def test_audio_streams_of_a_tone_carry_its_pitch():
    pitch_stream = audio.audio_streams(tone(220.0), SR, audio.AudioConfig())["pitch"]
    f0, voiced = pitch_stream.values[INTERIOR].T
    assert np.all(voiced == 1)
    np.testing.assert_allclose(f0, 220.0, rtol=0.01)


def test_egemaps_of_a_tone_is_88_finite_values_named_as_opensmile():
    values, names = audio.egemaps(tone(220.0), SR)
    assert values.shape == (88,) and np.isfinite(values).all()
    reference = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    assert names == reference.feature_names
    # Mean F0 in semitones above 27.5 Hz: 220 Hz is three octaves up.
    semitones = values[names.index("F0semitoneFrom27.5Hz_sma3nz_amean")]
    assert abs(semitones - 12 * np.log2(220 / 27.5)) < 0.2


def test_egemaps_lld_of_a_tone_then_silence_tracks_its_pitch_and_blanks_unvoiced_frames():
    """openSMILE's 25 eGeMAPS descriptors on its 10 ms clock: F0 of a 220 Hz tone is 36
    semitones above 27.5 Hz, and the voiced-only descriptors (formants, jitter, ...) are NaN
    where the signal is silent, not openSMILE's 0."""
    y = np.concatenate([tone(220.0, seconds=0.5), np.zeros(SR // 2, np.float32)])
    stream = audio.audio_streams(y, SR, audio.AudioConfig(families=("mfcc", "egemaps_lld")))["egemaps_lld"]
    reference = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                                feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    assert stream.names == reference.feature_names and stream.values.shape == (96, 25)
    assert stream.frame_rate == 100.0 and stream.meta["hop_length"] == HOP
    tone_frames, silent_frames = stream.values[5:40], stream.values[55:]
    f0 = stream.names.index("F0semitoneFrom27.5Hz_sma3nz")
    np.testing.assert_allclose(tone_frames[:, f0], 12 * np.log2(220 / 27.5), atol=0.2)
    voiced_only = [i for i, name in enumerate(stream.names) if name.endswith("nz")]
    assert len(voiced_only) == 15 and np.isnan(silent_frames[:, voiced_only]).all()
    assert np.isfinite(stream.values[:, stream.names.index("Loudness_sma3")]).all()
    # its functionals, like any stream's: 25 descriptors x 11 statistics
    values, names = functionals(stream)
    assert values.shape == (275,) and "F1frequency_sma3nz_p50" in names


def test_warm_up_builds_the_shared_extractor_once():
    audio.warm_up(audio.AudioConfig())
    assert audio._smile(opensmile.FeatureSet.eGeMAPSv02) is audio._smile(opensmile.FeatureSet.eGeMAPSv02)


BAD_SIGNALS = {
    "2-D": (np.zeros((2, 800), dtype=np.float32), SR),
    "NaN": (np.array([0.0, np.nan] * 400, dtype=np.float32), SR),
    "inf": (np.array([0.0, np.inf] * 400), SR),
    "empty": (np.zeros(0, dtype=np.float32), SR),
    "integers": (np.zeros(800, dtype=np.int16), SR),
    "sr zero": (np.zeros(800, dtype=np.float32), 0),
    "sr negative": (np.zeros(800, dtype=np.float32), -16000),
}
FAMILIES = [
    audio.mfcc,
    audio.zero_crossing_rate,
    audio.pitch,
    audio.energy,
    audio.chroma,
    audio.log_mel,
    audio.egemaps,
]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: f.__name__)
@pytest.mark.parametrize("signal, sr", BAD_SIGNALS.values(), ids=BAD_SIGNALS.keys())
def test_bad_signals_raise_feature_error(family, signal, sr):
    with pytest.raises(FeatureError):
        family(signal, sr)


@pytest.mark.parametrize(
    "call",
    [
        lambda: audio.energy(tone(220.0), SR, frame_length=401),
        lambda: audio.energy(tone(220.0), SR, hop_length=0),
        lambda: audio.pitch(tone(220.0), SR, frame_length=400),  # two periods of 60 Hz
        lambda: audio.pitch(tone(220.0), SR, fmin=300.0, fmax=200.0),
        lambda: audio.mfcc(tone(220.0), SR, n_mfcc=80, n_mels=64),
        lambda: audio.AudioConfig(n_mfcc=70),
        lambda: audio.AudioConfig(frame_length=401),
        lambda: audio.AudioConfig(delta_width=4),
        lambda: audio.mfcc(tone(220.0), SR, delta_width=2),
        lambda: audio.audio_streams(tone(220.0), 22050, audio.AudioConfig()),
    ],
)
def test_bad_parameters_raise_feature_error(call):
    with pytest.raises(FeatureError) as error:
        call()
    assert isinstance(error.value, EmofuseError) and str(error.value)


def test_config_round_trips_through_json():
    config = audio.AudioConfig(n_mfcc=20, hop_length=320)
    assert audio.AudioConfig(**json.loads(json.dumps(config.to_dict()))) == config


@pytest.mark.parametrize("actor, low, high", [("01", 80, 180), ("02", 160, 330)])
def test_real_speech_pitch_separates_male_and_female_voices(real_speech, actor, low, high):
    soundfile = pytest.importorskip("soundfile")
    path = sorted((real_speech / f"Actor_{actor}").glob("*.flac"))[0]  # a neutral clip
    y, native_sr = soundfile.read(path, dtype="float32", always_2d=True)
    y = librosa.resample(y.mean(axis=1), orig_sr=native_sr, target_sr=SR, res_type="soxr_hq")
    f0, voiced = audio.pitch(y, SR)
    assert 0.1 < voiced.mean() < 0.9
    assert low < np.nanmedian(f0) < high


def test_families_compute_only_what_the_config_names():
    y = tone(220.0)
    config = audio.AudioConfig(families=("pitch", "egemaps"))
    streams = audio.audio_streams(y, SR, config)
    assert list(streams) == ["pitch"]
    assert list(audio.clip_features(y, SR, config)) == ["egemaps"]
    full = audio.audio_streams(y, SR, audio.AudioConfig())
    np.testing.assert_array_equal(streams["pitch"].values, full["pitch"].values)
    assert audio.clip_features(y, SR, audio.AudioConfig(families=("mfcc",))) == {}


def test_unknown_family_is_refused_by_name():
    with pytest.raises(FeatureError, match="spectral_nonsense"):
        audio.AudioConfig(families=("mfcc", "spectral_nonsense"))


def test_functional_names_are_unique_across_every_family():
    config = audio.AudioConfig(families=audio.STREAM_FAMILIES)
    names = [n for stream in audio.audio_streams(tone(220.0), SR, config).values() for n in functionals(stream)[1]]
    assert len(names) == len(set(names))
    assert {"voiced_fraction", "voiced_acf_fraction"} <= set(names)
