"""OMSN-ER's audio families (spectral shape, amplitude envelope, mean-crossing rate) on known signals."""

import numpy as np
import pytest

from features import audio
from features.errors import FeatureError
from features.functionals import functionals

SR = 16000
HOP = 160
N_FFT = 400  # the default window: bins 40 Hz apart
BIN = SR / N_FFT
INTERIOR = slice(10, -10)  # frames whose windows lie wholly inside a 1 s signal
CENTROID, SPREAD, ROLLOFF, FLUX, FLATNESS = range(5)


def tone(frequency, seconds=1.0, amplitude=0.3, offset=0.0):
    time = np.arange(int(SR * seconds)) / SR
    return (offset + amplitude * np.sin(2 * np.pi * frequency * time)).astype(np.float32)


def white_noise(n_samples=SR, seed=0):
    return (0.1 * np.random.default_rng(seed).standard_normal(n_samples)).astype(np.float32)


# --- spectral shape ------------------------------------------------------------------------------


@pytest.mark.parametrize("frequency", [400.0, 1000.0, 3000.0])
def test_centroid_of_a_bin_centred_tone_is_its_frequency_and_spread_half_a_bin_root_two(frequency):
    # A Hann window spreads a bin-centred tone over bins k-1, k, k+1 with magnitudes 1/4, 1/2,
    # 1/4: centroid f, spread sqrt(2 * 1/4 * BIN^2) = BIN / sqrt(2).
    shape = audio.spectral_shape(tone(frequency), SR)
    assert shape.shape == (5, 1 + SR // HOP)
    np.testing.assert_allclose(shape[CENTROID, INTERIOR], frequency, rtol=1e-4)
    np.testing.assert_allclose(shape[SPREAD, INTERIOR], BIN / np.sqrt(2), rtol=1e-3)


@pytest.mark.parametrize("frequency", [220.0, 1234.0])
def test_centroid_and_rolloff_of_any_tone_lie_within_a_bin(frequency):
    shape = audio.spectral_shape(tone(frequency), SR)[:, INTERIOR]
    assert np.all(np.abs(shape[CENTROID] - frequency) < BIN / 2)
    # 85 % of the magnitude lies at or below the bin just above the tone.
    assert np.all((shape[ROLLOFF] >= frequency - BIN) & (shape[ROLLOFF] <= frequency + 2 * BIN))


def test_white_noise_is_spread_over_the_band():
    centroid, spread, rolloff, _, flatness = audio.spectral_shape(white_noise(4 * SR), SR)[:, 10:-10].mean(axis=1)
    # Flat magnitude on [0, sr/2]: mean sr/4, standard deviation sr/(4 sqrt 3), 85 % at 0.85 sr/2.
    assert abs(centroid - SR / 4) < 0.03 * SR / 4
    assert abs(spread - SR / (4 * np.sqrt(3))) < 0.05 * SR / (4 * np.sqrt(3))
    assert abs(rolloff - 0.85 * SR / 2) < 2 * BIN
    # Periodogram bins are exponential: E[ln P] = ln E[P] - gamma, so flatness ~ exp(-gamma).
    assert abs(flatness - np.exp(-np.euler_gamma)) < 0.03


def test_flatness_of_an_impulse_is_one_and_of_a_tone_near_zero():
    impulse = np.zeros(SR, dtype=np.float32)
    impulse[50 * HOP] = 1.0  # the centre of frame 50: a flat spectrum there
    assert audio.spectral_shape(impulse, SR)[FLATNESS, 50] == pytest.approx(1.0, abs=1e-6)
    assert np.all(audio.spectral_shape(tone(1000.0), SR)[FLATNESS, INTERIOR] < 1e-3)


def test_flux_is_zero_for_a_stationary_tone_and_peaks_where_the_frequency_changes():
    # 400 Hz repeats every 40 samples, so every 160-sample hop sees the same frame.
    steady = audio.spectral_shape(tone(400.0), SR)[FLUX]
    assert steady[0] == 0.0
    np.testing.assert_allclose(steady[INTERIOR], 0.0, atol=1e-6)
    # Flux is loudness-free: away from the frames that straddle a step in level, it stays 0.
    louder = audio.spectral_shape(np.concatenate([tone(400.0), tone(400.0, amplitude=0.9)]), SR)[FLUX]
    np.testing.assert_allclose(np.r_[louder[10:98], louder[103:-10]], 0.0, atol=1e-6)
    change = np.concatenate([tone(400.0), tone(2000.0)])
    flux = audio.spectral_shape(change, SR)[FLUX]
    assert abs(int(flux.argmax()) - SR // HOP) <= 2  # the change is at frame 100
    # The unit spectra before and after are (almost) disjoint, sqrt(2) apart: the steps
    # between them add up to at least that (triangle inequality), and no more elsewhere.
    assert flux[95:106].sum() >= np.sqrt(2) - 1e-3
    np.testing.assert_allclose(np.r_[flux[10:95], flux[106:-10]], 0.0, atol=1e-6)


def test_rolloff_fraction_is_a_parameter():
    two_tones = tone(500.0) + tone(3000.0)  # equal magnitudes: half below 500 Hz, half at 3 kHz
    low = audio.spectral_shape(two_tones, SR, rolloff=0.4)[ROLLOFF, INTERIOR]
    high = audio.spectral_shape(two_tones, SR, rolloff=0.85)[ROLLOFF, INTERIOR]
    assert np.all(np.abs(low - 500.0) <= BIN) and np.all(np.abs(high - 3000.0) <= BIN)
    with pytest.raises(FeatureError, match="roll-off"):
        audio.spectral_shape(two_tones, SR, rolloff=1.0)


def test_silence_has_zero_shape_flatness_one_and_no_flux():
    shape = audio.spectral_shape(np.zeros(SR // 2, dtype=np.float32), SR)
    np.testing.assert_array_equal(shape[[CENTROID, SPREAD, ROLLOFF, FLUX]], 0.0)
    np.testing.assert_allclose(shape[FLATNESS], 1.0)


# --- amplitude envelope and mean-crossing rate ---------------------------------------------------


@pytest.mark.parametrize("amplitude", [0.05, 0.3, 0.9])
def test_envelope_of_a_constant_amplitude_tone_is_its_amplitude(amplitude):
    envelope = audio.amplitude_envelope(tone(220.0, amplitude=amplitude), SR)
    assert envelope.shape == (1, 1 + SR // HOP)
    np.testing.assert_allclose(envelope[0, INTERIOR], amplitude, rtol=1e-3)


def test_envelope_follows_a_step_in_amplitude():
    step = np.concatenate([tone(220.0, amplitude=0.1), tone(220.0, amplitude=0.5)])
    envelope = audio.amplitude_envelope(step, SR)[0]
    np.testing.assert_allclose(envelope[10:90], 0.1, rtol=1e-3)
    np.testing.assert_allclose(envelope[110:190], 0.5, rtol=1e-3)


def test_mean_crossing_rate_ignores_a_dc_offset_that_the_zero_crossing_rate_does_not():
    offset_tone = tone(220.0, amplitude=0.3, offset=0.5)  # never below zero
    assert np.all(audio.zero_crossing_rate(offset_tone, SR) == 0)
    mcr = audio.mean_crossing_rate(offset_tone, SR)
    assert mcr.shape == (1, 1 + SR // HOP)
    np.testing.assert_allclose(mcr[0, INTERIOR], 2 * 220 / SR, atol=1.5 / N_FFT)
    # Without an offset it agrees with the zero-crossing rate (the frame mean is near 0).
    centred = tone(220.0)
    np.testing.assert_allclose(audio.mean_crossing_rate(centred, SR)[0, INTERIOR],
                               audio.zero_crossing_rate(centred, SR)[0, INTERIOR], atol=1.5 / N_FFT)


def test_mean_crossing_rate_of_noise_and_silence():
    noise = white_noise() + 0.7
    assert abs(audio.mean_crossing_rate(noise, SR)[0, INTERIOR].mean() - 0.5) < 0.02
    assert np.all(audio.mean_crossing_rate(np.zeros(SR // 2, dtype=np.float32), SR) == 0)


# --- streams, functionals and bad input ----------------------------------------------------------

OMSN_FAMILIES = ("spectral", "envelope", "mcr")


def test_families_are_opt_in():
    assert set(OMSN_FAMILIES) <= set(audio.STREAM_FAMILIES)
    assert not set(OMSN_FAMILIES) & set(audio.DEFAULT_FAMILIES)
    assert not set(OMSN_FAMILIES) & set(audio.audio_streams(tone(220.0), SR, audio.AudioConfig()))


@pytest.mark.parametrize("n_samples", [1, 159, 160, 161, 4321])
def test_streams_share_the_common_clock_and_are_finite(n_samples):
    config = audio.AudioConfig(families=("zcr",) + OMSN_FAMILIES)
    for signal in (white_noise(n_samples), np.zeros(n_samples, dtype=np.float32)):
        streams = audio.audio_streams(signal, SR, config)
        assert list(streams) == ["zcr", *OMSN_FAMILIES]
        for stream in streams.values():
            assert stream.values.shape[0] == 1 + n_samples // HOP
            assert stream.frame_rate == SR / HOP
            assert np.isfinite(stream.values).all()
    assert streams["spectral"].names == ["spectral_centroid", "spectral_spread", "spectral_rolloff",
                                         "spectral_flux", "spectral_flatness"]


def test_functionals_of_the_new_streams():
    streams = audio.audio_streams(tone(1000.0, amplitude=0.4), SR, audio.AudioConfig(families=OMSN_FAMILIES))
    values, names = functionals(streams["spectral"])
    assert len(values) == 5 * 11 and names[0] == "spectral_centroid_mean"
    assert values[names.index("spectral_centroid_p50")] == pytest.approx(1000.0, rel=1e-3)
    values, names = functionals(streams["envelope"])
    assert values[names.index("envelope_p50")] == pytest.approx(0.4, rel=1e-3)


@pytest.mark.parametrize("family", [audio.spectral_shape, audio.amplitude_envelope, audio.mean_crossing_rate],
                         ids=lambda f: f.__name__)
@pytest.mark.parametrize("signal, sr", [
    (np.zeros((2, 800), dtype=np.float32), SR),
    (np.array([0.0, np.nan] * 400, dtype=np.float32), SR),
    (np.zeros(0, dtype=np.float32), SR),
    (np.zeros(800, dtype=np.int16), SR),
    (np.zeros(800, dtype=np.float32), 0),
], ids=["2-D", "NaN", "empty", "integers", "sr zero"])
def test_bad_signals_raise_feature_error(family, signal, sr):
    with pytest.raises(FeatureError):
        family(signal, sr)


def test_odd_frame_length_is_refused():
    with pytest.raises(FeatureError, match="even"):
        audio.mean_crossing_rate(tone(220.0), SR, frame_length=401)
