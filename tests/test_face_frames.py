"""The opt-in ``face_frames`` family: a few face crops per clip, evenly spread, shrunk."""

import numpy as np
import pytest

from features.errors import FeatureError
from features.video import DEFAULT_VIDEO_FAMILIES, VideoConfig, face_frames, video_features


def numbered_crops(t=20, size=64):
    """Crop i is filled with grey level i, so a taken frame tells its index."""
    return np.repeat(np.arange(t, dtype=np.uint8), size * size).reshape(t, size, size)


def test_frames_are_taken_at_the_middles_of_equal_parts():
    frames, index = face_frames(numbered_crops(20), np.ones(20, bool), n_frames=4, size=16)
    np.testing.assert_array_equal(index, [2, 7, 12, 17])
    assert frames.shape == (4, 16, 16) and frames.dtype == np.float32
    np.testing.assert_allclose(frames[:, 0, 0], np.array([2, 7, 12, 17]) / 255)


def test_a_frame_without_a_face_is_replaced_by_the_nearest_one_the_earlier_on_a_tie():
    valid = np.ones(20, bool)
    valid[[7, 12, 13]] = False
    _, index = face_frames(numbered_crops(20), valid, n_frames=4, size=8)
    np.testing.assert_array_equal(index, [2, 6, 11, 17])


def test_short_clips_repeat_frames_and_no_face_gives_nan():
    _, index = face_frames(numbered_crops(3), np.ones(3, bool), n_frames=6, size=8)
    np.testing.assert_array_equal(index, [0, 0, 1, 1, 2, 2])
    frames, index = face_frames(numbered_crops(5), np.zeros(5, bool), n_frames=2, size=8)
    assert np.isnan(frames).all() and (index == -1).all()


def test_crops_are_shrunk_by_pixel_area_averaging():
    crop = np.zeros((1, 64, 64), np.uint8)
    crop[0, :, 32:] = 255
    crop[0, ::2, :32] = 102  # every other row: averages to 51
    frames, _ = face_frames(crop, np.ones(1, bool), n_frames=1, size=32)
    np.testing.assert_allclose(frames[0, :, 16:], 1.0)
    np.testing.assert_allclose(frames[0, :, :16], 51 / 255, atol=1e-6)


@pytest.mark.parametrize("options", [{"n_frames": 0}, {"size": 65}, {"size": 0}])
def test_bad_settings_are_refused(options):
    with pytest.raises(FeatureError, match="face_frames"):
        face_frames(numbered_crops(4), np.ones(4, bool), **options)


def test_video_features_store_the_crops_flattened_and_the_fraction_of_frames_with_a_face():
    valid = np.ones(20, bool)
    valid[:5] = False
    config = VideoConfig(families=("face_frames",), face_frames_count=4, face_frames_size=16)
    streams, functionals = video_features(numbered_crops(20), valid, 25.0, config)
    stream = streams["face_frames"]
    assert stream.values.shape == (4, 256) and stream.names[:2] == ["face_px_0_0", "face_px_0_1"]
    assert stream.names[-1] == "face_px_15_15" and stream.frame_rate == pytest.approx(25.0 * 4 / 20)
    frames, _ = face_frames(numbered_crops(20), valid, n_frames=4, size=16)
    np.testing.assert_array_equal(stream.values.reshape(4, 16, 16), frames)
    values, names = functionals["face_frames"]
    assert names == ["face_fraction"] and values[0] == pytest.approx(0.75)


def test_the_family_is_opt_in_and_its_settings_join_the_configuration_only_with_it():
    assert "face_frames" not in DEFAULT_VIDEO_FAMILIES and VideoConfig().families == DEFAULT_VIDEO_FAMILIES
    assert not {"face_frames_count", "face_frames_size"} & set(VideoConfig().to_dict())
    config = VideoConfig(families=("hog", "face_frames"), face_frames_count=6)
    assert config.to_dict()["face_frames_count"] == 6 and VideoConfig(**config.to_dict()) == config
    with pytest.raises(FeatureError, match="face_frames_size"):
        VideoConfig(families=("face_frames",), face_frames_size=0)
