"""Face detection, tracking and cropping (extract.faces) and the drawn face (extract.synthetic.face)."""

from pathlib import Path

import cv2
import numpy as np
import pytest

from extract.errors import DecodeError
from extract.faces import (
    FaceTrack, crop_face, detect_faces, detect_near, interpolate_boxes, track_faces, track_video,
)
from extract.labels import VALENCE_AROUSAL
from extract.synthetic.face import RAVDESS_VIDEO, SMALL_VIDEO, FaceIdentity, render_face_clip, sample_face

SHARED = Path(__file__).resolve().parents[2] / "shared"
RAVDESS_VIDEOS = sorted((SHARED / "data" / "ravdess-video-actor05").glob("*.mp4"))


def _overlap(a, b):
    """Intersection over union of two x, y, w, h boxes."""
    x0, y0 = max(a[0], b[0]), max(a[1], b[1])
    x1, y1 = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def _speech(n_frames, rng):
    """A syllable-like mouth opening in [0, 1]."""
    return np.clip(np.abs(np.sin(np.arange(n_frames) / 2.0)) * rng.uniform(0.5, 1.0), 0, 1)


# --- the drawn face -------------------------------------------------------------------


def test_render_shape_dtype_and_determinism():
    face = sample_face(np.random.default_rng(0))
    mouth = _speech(12, np.random.default_rng(1))
    clip = render_face_clip(face, "happy", 1.0, mouth, np.random.default_rng(2))
    again = render_face_clip(face, "happy", 1.0, mouth, np.random.default_rng(2))
    assert clip.shape == (12, SMALL_VIDEO["height"], SMALL_VIDEO["width"], 3)
    assert clip.dtype == np.uint8
    np.testing.assert_array_equal(clip, again)
    assert clip.std() > 20  # a face on a backdrop, not a flat frame
    assert RAVDESS_VIDEO == dict(width=1280, height=720, fps=30.0)


def test_identities_differ_and_are_frozen():
    a, b = sample_face(np.random.default_rng(0)), sample_face(np.random.default_rng(1))
    assert isinstance(a, FaceIdentity) and a != b
    assert a.eye_dx != b.eye_dx and a.skin != b.skin
    with pytest.raises(AttributeError):
        a.aspect = 1.0


def test_expression_builds_up_from_neutral_start():
    # Same seed -> same pose, light and noise; only the acted expression differs.  The
    # expression starts from rest (identical first frames), is strongest mid-clip, and
    # fades by the end; it changes the face, never the backdrop.
    face, mouth = sample_face(np.random.default_rng(3)), np.zeros(30)
    neutral = render_face_clip(face, "neutral", 2.0, mouth, np.random.default_rng(4)).astype(int)
    happy = render_face_clip(face, "happy", 2.0, mouth, np.random.default_rng(4)).astype(int)
    change = np.abs(happy - neutral).mean(axis=(1, 2, 3))
    assert change[0] == 0
    assert change.max() > 0.3
    assert change[-1] < change.max()
    assert np.abs(happy - neutral)[:, :, :15].max() == 0  # left edge of the frame: backdrop only


def test_face_carries_valence_more_than_arousal():
    # With the same seed only the acted expression differs.  Opposite valence (happy vs
    # sad) must change the face far more than a small arousal step at equal valence
    # (angry vs fearful), and more than a large arousal step (sad vs disgust).
    face, mouth = sample_face(np.random.default_rng(5)), np.zeros(20)
    clips = {
        emotion: render_face_clip(face, emotion, 1.0, mouth, np.random.default_rng(6)).astype(int)
        for emotion in ("happy", "sad", "angry", "fearful", "disgust")
    }

    def change(a, b):
        return np.abs(clips[a] - clips[b]).mean()

    assert change("happy", "sad") > 3 * change("angry", "fearful")
    assert change("happy", "sad") > change("sad", "disgust") > change("angry", "fearful") > 0


def test_mouth_opens_with_speech():
    face = sample_face(np.random.default_rng(7))
    closed = render_face_clip(face, "neutral", 1.0, np.zeros(6), np.random.default_rng(8)).astype(int)
    open_ = render_face_clip(face, "neutral", 1.0, np.ones(6), np.random.default_rng(8)).astype(int)
    # An open mouth shows a dark interior: the frames get darker, only in the lower face.
    darker = (closed - open_).mean(axis=(0, 3))
    rows = np.nonzero(darker.max(axis=1) > 30)[0]
    assert rows.size > 0
    assert rows.min() > SMALL_VIDEO["height"] * 0.5
    assert (closed - open_).sum() > 0


def test_render_rejects_bad_arguments():
    face, rng = sample_face(np.random.default_rng(0)), np.random.default_rng(0)
    with pytest.raises(ValueError, match="emotion"):
        render_face_clip(face, "bored", 1.0, np.zeros(3), rng)
    with pytest.raises(ValueError, match="mouth_open"):
        render_face_clip(face, "happy", 1.0, np.full(3, 1.5), rng)
    with pytest.raises(ValueError, match="intensity"):
        render_face_clip(face, "happy", 0.0, np.zeros(3), rng)


# --- detection -----------------------------------------------------------------------


def test_detector_finds_the_astronaut():
    skimage_data = pytest.importorskip("skimage.data")
    image = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    boxes = detect_faces(image)
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) >= 1
    # The face (checked by eye): x 175-275, y 60-165 in the 512 x 512 image.
    assert _overlap(boxes[0], (175, 60, 100, 105)) > 0.6
    np.testing.assert_array_equal(detect_faces(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)), boxes)


def test_detect_near_finds_the_face_again_in_a_small_window():
    skimage_data = pytest.importorskip("skimage.data")
    grey = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2GRAY)
    grey = cv2.resize(grey, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC)  # face ~200 px, as in 720p video
    face = detect_faces(grey)[0]
    windows = []

    def recording(image, **kwargs):
        windows.append(image.shape)
        return detect_faces(image, **kwargs)

    moved = face + [16, -14, 0, 0]  # the last box, off by 8 % of the face
    box = detect_near(grey, moved, face_px=32, detector=recording)
    assert _overlap(box, face) > 0.75
    assert max(windows[0]) <= 2 * 32 + 8  # the face searched at ~32 px, not at 300
    assert detect_near(grey, (800, 800, 200, 200)) is None  # no face in the bottom-right corner
    # With the box known, whole-frame searches happen only until the face is found.
    frames = [grey] * 12
    windows.clear()
    track = track_faces(frames, 25.0, detect_every=1, detector=recording)
    assert track.detected.all()
    assert windows.count((160 * grey.shape[0] // grey.shape[1], 160)) == 1
    assert all(max(shape) <= 2 * 32 + 8 for shape in windows[1:])


def test_detector_finds_nothing_in_noise_and_rejects_floats():
    noise = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    assert detect_faces(noise).shape == (0, 4)
    with pytest.raises(ValueError, match="uint8"):
        detect_faces(noise.astype(np.float32))


@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_synthetic_faces_are_detected_at_small_size(seed):
    rng = np.random.default_rng(seed)
    face = sample_face(rng)
    for emotion in rng.choice(sorted(VALENCE_AROUSAL), size=2, replace=False):
        clip = render_face_clip(face, emotion, 2.0, _speech(20, rng), rng, width=160, height=120)
        track = track_faces(clip, SMALL_VIDEO["fps"], detect_every=1)
        assert track.detected.mean() >= 0.9, (seed, emotion)
        centre_x = track.boxes[:, 0] + track.boxes[:, 2] / 2
        assert np.all(np.abs(centre_x - 80) < 20)  # the face, near the frame centre
        assert np.all((track.boxes[:, 2] > 35) & (track.boxes[:, 2] < 90))


def test_synthetic_face_is_detected_at_ravdess_size():
    rng = np.random.default_rng(20)
    size = dict(width=RAVDESS_VIDEO["width"], height=RAVDESS_VIDEO["height"])
    clip = render_face_clip(sample_face(rng), "angry", 2.0, _speech(8, rng), rng, **size)
    assert clip.shape == (8, 720, 1280, 3)
    track = track_faces(clip, RAVDESS_VIDEO["fps"], detect_every=1)
    assert track.detected.mean() >= 0.9
    assert track.frame_size == (1280, 720)
    assert np.all((track.boxes[:, 2] > 250) & (track.boxes[:, 2] < 550))


# --- tracking ------------------------------------------------------------------------


def _index_frames(n, shape=(200, 400)):
    """Grey frames whose pixel value is the frame index, for a detector that reads it."""
    return (np.full(shape, i, dtype=np.uint8) for i in range(n))


def _linear_box(t):
    return np.array([20 + 3 * t, 10 + 1.5 * t, 80 - 0.5 * t, 80 - 0.5 * t])


def _fake_detector(scale, missing=()):
    """Finds ``_linear_box`` of the frame's index in a whole frame down-scaled by ``scale``."""
    def detector(grey, **_):
        t = int(grey[0, 0])
        return np.empty((0, 4)) if t in missing else (_linear_box(t) * scale)[None]
    return detector


def test_interpolation_between_detections_is_exact():
    # Detection every 4th frame on a 4x down-scaled copy; boxes move linearly, so linear
    # interpolation plus the symmetric moving average must give back every frame's box.
    track = track_faces(_index_frames(23), 25.0, detect_every=4, detect_width=100, smooth=5,
                        track_face_px=None, detector=_fake_detector(0.25))
    expected = np.array([_linear_box(t) for t in range(23)])
    np.testing.assert_allclose(track.boxes, expected, rtol=1e-5)
    assert np.flatnonzero(track.detected).tolist() == [0, 4, 8, 12, 16, 20, 22]  # 22: the last frame
    assert track.valid.all()


def test_lost_face_is_searched_every_frame_and_gap_interpolated():
    track = track_faces(_index_frames(30), 25.0, detect_every=5, detect_width=400, smooth=3,
                        track_face_px=None, detector=_fake_detector(1.0, missing=set(range(5, 13))))
    assert np.flatnonzero(track.detected).tolist() == [0, 13, 15, 20, 25, 29]
    np.testing.assert_allclose(track.boxes, [_linear_box(t) for t in range(30)], rtol=1e-5)


def test_long_wait_holds_the_last_box():
    # With max_wait = 0.2 s at 25 fps a frame waits at most 5 frames for a detection.
    track = track_faces(_index_frames(30), 25.0, detect_every=5, detect_width=400, smooth=1, max_wait=0.2,
                        track_face_px=None, detector=_fake_detector(1.0, missing=set(range(1, 30))))
    np.testing.assert_allclose(track.boxes, np.tile(_linear_box(0), (30, 1)), rtol=1e-6)


def test_interpolate_boxes_holds_ends_and_needs_anchors():
    boxes = interpolate_boxes(np.arange(6), [2, 4], [[0, 0, 10, 10], [4, 2, 10, 10]])
    np.testing.assert_allclose(boxes[:, 0], [0, 0, 0, 2, 4, 4])
    assert np.isnan(interpolate_boxes(np.arange(3), [], np.empty((0, 4)))).all()


@pytest.mark.parametrize("kind", ["noise", "blank"])
def test_clip_without_face_gives_invalid_track(kind):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) if kind == "noise"
              else np.full((120, 160, 3), 128, np.uint8) for _ in range(12)]
    track = track_faces(frames, 15.0, crop_size=32)
    assert isinstance(track, FaceTrack)
    assert not track.valid.any() and not track.detected.any()
    assert np.isnan(track.boxes).all() and track.boxes.shape == (12, 4)
    assert track.crops.shape == (12, 32, 32) and not track.crops.any()


def test_empty_and_bad_input():
    track = track_faces(iter([]), 30.0)
    assert track.crops.shape == (0, 64, 64) and track.boxes.shape == (0, 4)
    with pytest.raises(ValueError, match="smooth"):
        track_faces(iter([]), 30.0, smooth=4)
    with pytest.raises(ValueError, match="expected"):
        track_faces([np.zeros((40, 40), np.uint8), np.zeros((40, 50), np.uint8)], 30.0)
    with pytest.raises(DecodeError):
        track_video("/nonexistent/clip.mp4")


def test_crop_size_edges_and_illumination_invariance():
    y, x = np.mgrid[:100, :140]
    grey = (128 + 90 * np.sin(x / 7) * np.cos(y / 9)).astype(np.uint8)
    crop = crop_face(grey, (100, -10, 60, 50), crop_size=48)  # box over the top-right corner
    assert crop.shape == (48, 48) and crop.dtype == np.uint8
    box = (30, 20, 50, 50)
    darker = cv2.convertScaleAbs(grey, alpha=0.5, beta=20)  # halved contrast, shifted
    difference = np.abs(crop_face(grey, box).astype(int) - crop_face(darker, box))
    assert np.median(difference) <= 1 and difference.max() <= 6
    face = crop_face(grey, box, margin=0.1)[5:59, 5:59]
    assert abs(face.mean() - 128) < 3


# --- real RAVDESS video ---------------------------------------------------------------


@pytest.mark.skipif(not RAVDESS_VIDEOS, reason="real RAVDESS videos not in ../shared")
def test_real_videos_are_tracked_steadily():
    for path in RAVDESS_VIDEOS:
        track = track_video(path)
        assert track.frame_size == (1280, 720) and abs(track.fps - 29.97) < 0.01
        assert len(track.valid) > 80 and track.valid.mean() >= 0.9
        width = np.nanmedian(track.boxes[:, 2])
        assert 300 < width < 550  # the actor's face fills about 60 % of the frame height
        centre = track.boxes[:, :2] + track.boxes[:, 2:] / 2
        assert np.nanmax(np.abs(np.diff(centre, axis=0))) < 0.03 * width
        assert np.nanmax(np.abs(np.diff(track.boxes[:, 2]))) < 0.03 * width
        assert track.crops.shape[1:] == (64, 64) and track.crops[track.valid].std() > 20


@pytest.mark.skipif(not RAVDESS_VIDEOS, reason="real RAVDESS videos not in ../shared")
def test_real_face_is_detected_in_nearly_every_frame():
    track = track_video(RAVDESS_VIDEOS[0], detect_every=1)
    assert track.detected.mean() >= 0.9
