"""HOG of face crops, frame functionals, the summary image, and the assembled video features."""

import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.feature import hog as skimage_hog

from features.errors import FeatureError
from features.stream import Stream
from features.video import (
    VideoConfig,
    frame_functionals,
    hog_descriptors,
    hog_names,
    hog_stream,
    summary_hog,
    summary_image,
    video_features,
)

VIDEO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess-video-actor05"
FPS = 30.0


def face_like_crops(n_frames=12, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n_frames, 64, 64)).astype(np.uint8)


def test_hog_shape_names_and_values_match_skimage():
    crops = face_like_crops()
    stream = hog_stream(crops, np.ones(len(crops), bool), FPS)
    # 64 px / 8 px cells = 8 cells; 7 x 7 blocks of 2 x 2 cells x 9 orientations.
    assert stream.values.shape == (12, 7 * 7 * 2 * 2 * 9) == (12, 1764)
    assert stream.names[:2] == ["hog_b0_0_c0_0_o0", "hog_b0_0_c0_0_o1"] and stream.names[-1] == "hog_b6_6_c1_1_o8"
    assert stream.frame_rate == FPS and stream.meta["block_norm"] == "L2-Hys"
    expected = [
        skimage_hog(crop / 255, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(2, 2), block_norm="L2-Hys")
        for crop in crops
    ]
    np.testing.assert_allclose(stream.values, expected, atol=1e-6)


@pytest.mark.parametrize("size, cell, block, orientations", [(50, 6, 3, 7), (37, 16, 1, 12)])
def test_hog_descriptors_match_skimage_for_other_settings(size, cell, block, orientations):
    images = np.random.default_rng(1).random((3, size, size))
    expected = [
        skimage_hog(image, orientations=orientations, pixels_per_cell=(cell, cell),
                    cells_per_block=(block, block), block_norm="L2-Hys")
        for image in images
    ]
    got = hog_descriptors(images, pixels_per_cell=cell, cells_per_block=block, orientations=orientations)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert got.shape[1] == len(hog_names(size, pixels_per_cell=cell, cells_per_block=block, orientations=orientations))


@pytest.mark.parametrize("stripes_along, energy_bin", [("x", 0), ("y", 4)])
def test_stripes_put_their_energy_in_the_gradient_orientation_bin(stripes_along, energy_bin):
    # Vertical stripes vary along x: horizontal gradients, orientation 0 deg -> bin 0 of [0, 20).
    # Horizontal stripes: gradients at 90 deg -> bin 4 of [80, 100).
    profile = np.where(np.arange(64) % 8 < 4, 40, 200).astype(np.uint8)
    crop = np.tile(profile, (64, 1)) if stripes_along == "x" else np.tile(profile[:, None], (1, 64))
    values = hog_stream(crop[None], np.ones(1, bool), FPS).values.reshape(7, 7, 2, 2, 9)
    energy = (values**2).sum(axis=(0, 1, 2, 3))
    assert np.argmax(energy) == energy_bin
    assert energy[energy_bin] > 0.999 * energy.sum()


def test_invalid_frames_are_nan_rows():
    crops = face_like_crops()
    valid = np.ones(12, bool)
    valid[[0, 5, 6]] = False
    values = hog_stream(crops, valid, FPS).values
    assert np.isnan(values[~valid]).all()
    assert np.isfinite(values[valid]).all()
    np.testing.assert_array_equal(values[valid], hog_stream(crops[valid], np.ones(9, bool), FPS).values)


def test_frame_functionals_match_numpy():
    rng = np.random.default_rng(2)
    values = rng.standard_normal((10, 3))
    values[[2, 7]] = np.nan
    got, names = frame_functionals(Stream(values, ["a", "b", "c"], frame_rate=FPS))
    valid = np.isfinite(values).all(axis=1)
    pairs = [i for i in range(9) if valid[i] and valid[i + 1]]  # (0,1), (3,4), (4,5), (5,6), (8,9)
    differences = np.abs(values[[i + 1 for i in pairs]] - values[pairs])
    expected = np.concatenate([
        values[valid].mean(axis=0), values[valid].std(axis=0), differences.mean(axis=0), differences.std(axis=0),
    ])
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert len(pairs) == 5
    assert names[:4] == ["a_mean", "b_mean", "c_mean", "a_std"] and names[-1] == "c_absdiff_std"


def test_frame_functionals_without_valid_frames_or_pairs_are_nan():
    no_frames, _ = frame_functionals(Stream(np.full((4, 2), np.nan), ["a", "b"], frame_rate=FPS))
    assert np.isnan(no_frames).all() and no_frames.shape == (8,)
    one_frame, _ = frame_functionals(Stream([[1.0, 2.0], [np.nan, np.nan]], ["a", "b"], frame_rate=FPS))
    np.testing.assert_array_equal(one_frame[:4], [1, 2, 0, 0])
    assert np.isnan(one_frame[4:]).all()


def test_summary_image_is_the_mean_of_valid_frames_and_its_hog_equals_the_frame_hog_when_constant():
    crops = face_like_crops(6)
    valid = np.array([True, False, True, True, False, True])
    np.testing.assert_allclose(summary_image(crops, valid), crops[valid].mean(axis=0) / 255)
    constant = np.repeat(crops[:1], 5, axis=0)
    values, names = summary_hog(constant, np.ones(5, bool))
    np.testing.assert_allclose(values, hog_stream(crops[:1], np.ones(1, bool), FPS).values[0], atol=1e-6)
    assert len(names) == 1764 and names[0] == "hog_summary_b0_0_c0_0_o0"


def test_clip_without_valid_frames_gives_nan_hog_and_zero_stip():
    crops = face_like_crops()
    streams, functionals = video_features(crops, np.zeros(12, bool), FPS)
    assert np.isnan(streams["hog"].values).all() and streams["hog"].values.shape == (12, 1764)
    assert np.isnan(functionals["hog"][0]).all() and len(functionals["hog"][0]) == 4 * 1764
    assert np.isnan(functionals["hog_summary"][0]).all()
    assert np.all(functionals["stip"][0] == 0) and len(streams["stip_points"].values) == 0


def test_video_features_shapes_and_config():
    crops = face_like_crops(20)
    streams, functionals = video_features(crops, np.ones(20, bool), FPS, VideoConfig())
    assert set(streams) == {"hog", "stip_points"} and set(functionals) == {"hog", "hog_summary", "stip"}
    for values, names in functionals.values():
        assert values.ndim == 1 and len(values) == len(names)
    assert streams["stip_points"].values.shape[1] == 54
    config = VideoConfig(crop_size=32, hog_pixels_per_cell=4, hog_orientations=6)
    assert json.loads(json.dumps(config.to_dict()))["stip_scales"][0] == [4.0, 2.0]
    assert VideoConfig(**config.to_dict()) == config
    small = video_features(crops[:, :32, :32], np.ones(20, bool), FPS, config)[0]["hog"]
    assert small.values.shape == (20, 7 * 7 * 2 * 2 * 6)
    with pytest.raises(FeatureError, match="crop_size is 64"):
        video_features(crops[:, :32, :32], np.ones(20, bool), FPS)
    with pytest.raises(FeatureError, match="one block"):
        hog_stream(crops[:, :8, :8], np.ones(20, bool), FPS)
    with pytest.raises(FeatureError, match="stip_threshold"):
        VideoConfig(stip_threshold=0.0)
    with pytest.raises(FeatureError, match="hog_orientations"):
        VideoConfig(hog_orientations=0)
    with pytest.raises(FeatureError, match="uint8"):
        video_features(crops.astype(float), np.ones(20, bool), FPS)


def haar_face_crops(path, size=64):
    """Grey frames of a video cropped to one box: the median of Haar detections on every 4th frame."""
    capture = cv2.VideoCapture(str(path))
    fps, frames = capture.get(cv2.CAP_PROP_FPS), []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))
    capture.release()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    boxes = []
    for frame in frames[::4]:
        faces = cascade.detectMultiScale(cv2.resize(frame, None, fx=0.25, fy=0.25), 1.1, 5, minSize=(40, 40))
        if len(faces):
            boxes.append(4 * faces[np.argmax(faces[:, 2] * faces[:, 3])])  # the largest face
    x, y, w, h = np.median(boxes, axis=0).astype(int)
    crops = [cv2.resize(frame[y:y + h, x:x + w], (size, size), interpolation=cv2.INTER_AREA) for frame in frames]
    return np.stack(crops), fps


def test_real_ravdess_video(capsys):
    path = VIDEO_DIR / "02-01-01-01-02-01-05.mp4"  # neutral statement, actor 5
    if not path.is_file():
        pytest.skip(f"{path} not available")
    crops, fps = haar_face_crops(path)
    valid = np.ones(len(crops), bool)
    start = time.process_time()
    hog = hog_stream(crops, valid, fps)
    hog_seconds = time.process_time() - start
    streams, functionals = video_features(crops, valid, fps)
    all_seconds = time.process_time() - start - hog_seconds
    assert np.isfinite(hog.values).all() and hog.values.shape == (len(crops), 1764)
    assert all(np.isfinite(values).all() for values, _ in functionals.values())
    points = streams["stip_points"].values
    # A speaking face gives some points, and they lie on the face's moving parts:
    # the mouth (lower middle) or the eyes, not on the crop's corners.
    assert len(points) >= 3
    x, y = points[:, 0] / 64, points[:, 1] / 64
    on_mouth_or_eyes = (np.abs(x - 0.5) < 0.3) & (((y > 0.25) & (y < 0.5)) | ((y > 0.6) & (y < 0.95)))
    assert on_mouth_or_eyes.mean() >= 0.5
    with capsys.disabled():
        duration = len(crops) / fps
        print(f"\n[real video] {path.name}: {len(crops)} frames, {len(points)} STIP points, "
              f"{on_mouth_or_eyes.mean():.0%} on mouth/eyes; CPU s per s of video: "
              f"HOG {hog_seconds / duration:.4f}, all video features {all_seconds / duration:.4f}")


def test_families_compute_only_what_the_config_names():
    crops = face_like_crops(n_frames=20)
    full_streams, full = video_features(crops, np.ones(20, bool), FPS)
    streams, functionals = video_features(crops, np.ones(20, bool), FPS, VideoConfig(families=("hog_summary",)))
    assert streams == {} and list(functionals) == ["hog_summary"]
    np.testing.assert_array_equal(functionals["hog_summary"][0], full["hog_summary"][0])
    with pytest.raises(FeatureError, match="optical_flow"):
        VideoConfig(families=("hog", "optical_flow"))
