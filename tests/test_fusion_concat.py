"""Early fusion (BlockConcat) and speaker normalisation."""

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from extract.errors import EmofuseError
from fusion.concat import BlockConcat, MedianImputer
from fusion.speaker_norm import speaker_zscore


@parametrize_with_checks([BlockConcat(), BlockConcat(pca=2), BlockConcat(pca=0.9), MedianImputer()])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_blocks_are_imputed_with_training_medians_then_standardised():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, (40, 5))
    X[3, 1] = np.nan
    X[7, :] = np.nan  # a clip without any feature
    fused = BlockConcat(blocks=[("audio", 2), ("video", 3)]).fit(X)
    expected = np.where(np.isnan(X), np.nanmedian(X, axis=0), X)
    expected = (expected - expected.mean(0)) / expected.std(0)
    np.testing.assert_allclose(fused.transform(X), expected, atol=1e-10)
    assert list(fused.get_feature_names_out()) == ["audio__x0", "audio__x1", "video__x2", "video__x3", "video__x4"]


def test_median_imputer_gives_simple_imputers_values():
    """The same statistics and output as SimpleImputer(strategy="median", keep_empty_features=True),
    on odd and even counts of observed values and a column with none."""
    from sklearn.impute import SimpleImputer

    rng = np.random.default_rng(2)
    X = rng.normal(0.0, 1.0, (41, 6))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 4] = np.nan
    X[0, 5], X[1:, 5] = 1.5, np.nan  # a single observed value
    X[:, 0] = rng.normal(0.0, 1.0, 41)  # complete: the median of the complete columns
    reference = SimpleImputer(strategy="median", keep_empty_features=True).fit(X[:30])
    imputer = MedianImputer().fit(X[:30])
    np.testing.assert_array_equal(imputer.statistics_, reference.statistics_)
    np.testing.assert_array_equal(imputer.transform(X[30:]), reference.transform(X[30:]))
    assert imputer.statistics_[4] == 0.0 and imputer.statistics_[5] == 1.5


def test_transform_uses_training_statistics_only():
    rng = np.random.default_rng(1)
    train, test = rng.normal(0, 2, (50, 3)), rng.normal(0, 2, (20, 3))
    fused = BlockConcat().fit(train)
    shifted = fused.transform(test + 10.0) - fused.transform(test)
    np.testing.assert_allclose(shifted, np.broadcast_to(10.0 / train.std(0), shifted.shape), rtol=1e-10)


def test_per_block_pca_keeps_a_large_block_from_drowning_a_small_one():
    rng = np.random.default_rng(2)
    audio, video = rng.normal(size=(60, 4)), rng.normal(size=(60, 3)) @ rng.normal(size=(3, 200))
    X = np.hstack([audio, video])
    fused = BlockConcat(blocks=[("audio", 4), ("video", 200)], pca={"video": 3}).fit(X)
    out = fused.transform(X)
    assert out.shape == (60, 7)
    np.testing.assert_allclose(out[:, :4], (audio - audio.mean(0)) / audio.std(0), atol=1e-10)
    # video has rank 3: three components keep all of its (standardised) variance
    assert np.isclose((out[:, 4:] ** 2).sum(), 60 * 200, rtol=1e-6)
    assert list(fused.get_feature_names_out())[4:] == ["video__pca0", "video__pca1", "video__pca2"]


def test_blocks_by_column_index_and_bad_blocks():
    X = np.arange(30, dtype=float).reshape(10, 3) ** 1.5
    out = BlockConcat(blocks=[("video", [2]), ("audio", [0, 1])]).fit_transform(X)
    np.testing.assert_allclose(out[:, 0], (X[:, 2] - X[:, 2].mean()) / X[:, 2].std())
    with pytest.raises(ValueError, match="add up to 2, but X has 3"):
        BlockConcat(blocks=[("audio", 2)]).fit(X)
    with pytest.raises(ValueError, match="outside"):
        BlockConcat(blocks=[("audio", [0, 3])]).fit(X)


def test_speaker_zscore_uses_each_speakers_own_statistics():
    rng = np.random.default_rng(3)
    speakers = np.repeat(["a", "b", "c"], 10)
    X = rng.normal(size=(30, 4)) * [1, 2, 3, 4] + np.repeat([[0.0], [50.0], [-7.0]], 10, axis=0)
    X[:, 3] = np.repeat([1.0, 2.0, 3.0], 10)  # constant within each speaker
    X[4, 0] = np.nan
    Z = speaker_zscore(X, speakers)
    assert Z.dtype == np.float32 and np.isnan(Z[4, 0])
    for speaker in "abc":
        rows = speakers == speaker
        np.testing.assert_allclose(np.nanmean(Z[rows, :3], axis=0), 0, atol=1e-6)
        np.testing.assert_allclose(np.nanstd(Z[rows, :3], axis=0), 1, atol=1e-5)
    np.testing.assert_array_equal(Z[:, 3], 0)
    # another speaker's values never change a speaker's output
    changed = X.copy()
    changed[speakers == "b"] *= 100
    np.testing.assert_array_equal(speaker_zscore(changed, speakers)[speakers != "b"], Z[speakers != "b"])


def test_speaker_zscore_reference_rows_give_the_statistics():
    X = np.array([[1.0], [3.0], [100.0], [10.0], [20.0]])
    speakers = np.array(["a", "a", "a", "b", "b"])
    reference = np.array([True, True, False, False, False])  # speaker b has no reference row
    Z = speaker_zscore(X, speakers, reference)
    np.testing.assert_allclose(Z[:, 0], [-1.0, 1.0, 98.0, -1.0, 1.0])
    with pytest.raises(EmofuseError, match=r"must have shape \(5,\)"):
        speaker_zscore(X, speakers[:4])


def test_video_pca_match_reduces_video_to_the_audio_column_count():
    rng = np.random.default_rng(5)
    X = np.hstack([rng.normal(size=(50, 6)), rng.normal(size=(50, 40))])
    fused = BlockConcat(blocks=[("audio", 6), ("video", 40)], video_pca="match").fit(X)
    assert fused.transform(X).shape == (50, 12)
    assert list(fused.get_feature_names_out())[6:8] == ["video__pca0", "video__pca1"]
    audio_reduced = BlockConcat(blocks=[("audio", 6), ("video", 40)], pca={"audio": 3}, video_pca="match").fit(X)
    assert audio_reduced.transform(X).shape == (50, 6)
    assert BlockConcat(blocks=[("audio", 6), ("video", 40)], pca=2, video_pca=5).fit(X).transform(X).shape == (50, 7)
