"""Per-clip functionals against numpy and scipy, and their NaN and naming rules."""

import re

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from features.errors import FeatureError
from features.functionals import STATISTICS, functionals
from features.stream import Stream

FRAME_RATE = 100.0


def as_dict(stream):
    values, names = functionals(stream)
    assert values.dtype == np.float32 and values.shape == (len(names),)
    return dict(zip(names, values.astype(np.float64)))


def reference_statistics(column, frame_rate):
    """The statistics of one column by numpy and scipy, over its non-NaN frames."""
    time = np.flatnonzero(~np.isnan(column)) / frame_rate
    x = column[~np.isnan(column)].astype(np.float64)
    return {
        "mean": x.mean(),
        "std": x.std(),
        "min": x.min(),
        "max": x.max(),
        "range": np.ptp(x),
        "p10": np.percentile(x, 10),
        "p50": np.percentile(x, 50),
        "p90": np.percentile(x, 90),
        "slope": np.polyfit(time, x, 1)[0],
        "skewness": scipy.stats.skew(x),
        "kurtosis": scipy.stats.kurtosis(x),
    }


def test_statistics_match_numpy_and_scipy_with_nan_frames_left_out():
    rng = np.random.default_rng(0)
    values = rng.gamma(2.0, size=(57, 3)).astype(np.float32)  # skewed, so skew != 0
    values[:, 1] += np.linspace(0, 5, 57, dtype=np.float32)  # a trend for the slope
    values[[3, 4, 20, 56], 1] = np.nan
    stats = as_dict(Stream(values, ["a", "b", "c"], frame_rate=50.0))
    for column, name in enumerate("abc"):
        expected = reference_statistics(values[:, column], 50.0)
        for statistic, value in expected.items():
            assert stats[f"{name}_{statistic}"] == pytest.approx(value, rel=1e-4, abs=1e-5)


def test_slope_is_in_units_per_second():
    seconds = np.arange(40) / 20.0
    stream = Stream((3.0 * seconds - 1.0)[:, np.newaxis], ["x"], frame_rate=20.0)
    assert as_dict(stream)["x_slope"] == pytest.approx(3.0, rel=1e-5)


def test_a_column_without_valid_frames_gives_nan_statistics():
    values = np.column_stack([np.full(10, np.nan), np.arange(10.0)])
    stats = as_dict(Stream(values, ["empty", "full"], FRAME_RATE))
    assert all(np.isnan(stats[f"empty_{statistic}"]) for statistic in STATISTICS)
    assert all(np.isfinite(stats[f"full_{statistic}"]) for statistic in STATISTICS)


@pytest.mark.parametrize("column", [np.full(12, 0.1), [np.nan] * 5 + [7.0] + [np.nan] * 3])
def test_a_flat_column_has_zero_spread_statistics(column):
    stats = as_dict(Stream(np.asarray(column)[:, np.newaxis], ["x"], FRAME_RATE))
    level = np.nanmax(column)
    for statistic in ("mean", "min", "max", "p10", "p50", "p90"):
        assert stats[f"x_{statistic}"] == pytest.approx(level, rel=1e-6)
    for statistic in ("std", "range", "slope", "skewness", "kurtosis"):
        assert stats[f"x_{statistic}"] == 0.0


def test_pitch_stream_gives_voiced_fraction_and_voiced_only_statistics():
    voiced = np.array([0, 1, 1, 1, 0, 0, 1, 1, 0, 0], dtype=float)
    f0 = np.where(voiced == 1, [0, 100, 110, 120, 0, 0, 200, 210, 0, 0], np.nan)
    loudness = np.arange(10.0)  # defined on every frame; only voiced frames count
    stream = Stream(np.column_stack([f0, voiced, loudness]), ["f0", "voiced", "level"], 100.0)
    stats = as_dict(stream)
    assert stats["voiced_fraction"] == pytest.approx(0.5)
    assert stats["f0_voiced_p50"] == pytest.approx(120.0)
    assert stats["f0_voiced_min"] == 100.0 and stats["f0_voiced_max"] == 210.0
    assert stats["level_voiced_mean"] == pytest.approx(np.mean([1, 2, 3, 6, 7]))
    assert not any(name.startswith("voiced_") and name != "voiced_fraction" for name in stats)
    assert len(stats) == 2 * len(STATISTICS) + 1


def test_an_unvoiced_clip_has_nan_pitch_statistics_and_zero_voiced_fraction():
    stream = Stream(np.column_stack([np.full(8, np.nan), np.zeros(8)]), ["f0", "voiced"], 100.0)
    stats = as_dict(stream)
    assert stats["voiced_fraction"] == 0.0
    assert np.isnan(stats["f0_voiced_mean"]) and np.isnan(stats["f0_voiced_p50"])


def test_a_stream_without_frames_gives_nan_and_a_finite_fraction():
    stats = as_dict(Stream(np.zeros((0, 2)), ["f0", "voiced"], 100.0))
    assert stats.pop("voiced_fraction") == 0.0
    assert all(np.isnan(value) for value in stats.values())


def test_names_are_unique_well_formed_and_in_column_order():
    names = [f"mfcc_{k}{suffix}" for suffix in ("", "_delta", "_delta2") for k in range(40)]
    stream = Stream(np.random.default_rng(1).normal(size=(30, 120)), names, FRAME_RATE)
    values, result_names = functionals(stream)
    assert len(values) == len(result_names) == len(STATISTICS) * 120
    assert len(set(result_names)) == len(result_names)
    assert all(re.fullmatch(r"[A-Za-z0-9]+(_[A-Za-z0-9]+)+", name) for name in result_names)
    assert result_names[: len(STATISTICS)] == [f"mfcc_0_{s}" for s in STATISTICS]
    assert "mfcc_3_delta_mean" in result_names and "mfcc_39_delta2_kurtosis" in result_names


@pytest.mark.parametrize(
    "stream",
    [
        Stream(np.array([[1.0], [np.inf]]), ["x"], FRAME_RATE),
        Stream(np.ones((3, 1)), ["x"], 0.0),
    ],
    ids=["infinite value", "zero frame rate"],
)
def test_unusable_streams_raise_feature_error(stream):
    with pytest.raises(FeatureError):
        functionals(stream)


@settings(max_examples=60, deadline=None)
@given(
    arrays(
        np.float32,
        st.tuples(st.integers(1, 40), st.integers(1, 4)),
        elements=st.one_of(st.just(np.nan), st.floats(-1e3, 1e3, width=32)),
    )
)
def test_order_statistics_are_ordered_and_bound_the_mean(values):
    stats = as_dict(Stream(values, [f"c{k}" for k in range(values.shape[1])], FRAME_RATE))
    for k in range(values.shape[1]):
        s = {statistic: stats[f"c{k}_{statistic}"] for statistic in STATISTICS}
        if np.isnan(values[:, k]).all():
            assert all(np.isnan(v) for v in s.values())
            continue
        tolerance = 1e-3 * (1 + abs(s["max"]) + abs(s["min"]))
        order = [s["min"], s["p10"], s["p50"], s["p90"], s["max"]]
        assert np.all(np.diff(order) >= -tolerance)
        assert s["min"] - tolerance <= s["mean"] <= s["max"] + tolerance
        assert s["std"] >= 0 and s["range"] == pytest.approx(s["max"] - s["min"], abs=tolerance)
        assert np.isfinite(list(s.values())).all()


def test_functionals_of_a_tone_clip_describe_the_tone():
    audio = pytest.importorskip("features.audio")
    time = np.arange(16000) / 16000
    y = (0.3 * np.sin(2 * np.pi * 220 * time)).astype(np.float32)
    stats = {}
    for stream in audio.audio_streams(y, 16000, audio.AudioConfig()).values():
        values, names = functionals(stream)
        assert not set(names) & set(stats)  # names are unique across families
        stats.update(zip(names, values))
    assert np.isfinite(list(stats.values())).all()
    assert stats["f0_voiced_p50"] == pytest.approx(220.0, rel=0.01)
    assert stats["voiced_fraction"] > 0.9
    assert stats["zcr_p50"] == pytest.approx(2 * 220 / 16000, abs=0.003)
