"""Space-time interest points: known answers on synthetic volumes, the exact response, encodings, bag of words."""

import json

import numpy as np
import pytest
import scipy.ndimage as ndi
from sklearn.exceptions import NotFittedError

from features.errors import FeatureError
from features.stip import (
    DESCRIPTOR_NAMES,
    POINT_COLUMNS,
    check_face_clip,
    cuboid_half_size,
    detect_interest_points,
    gaussian_scale_space,
    harris3d_response,
    normalise_volume,
    point_descriptors,
    stip_encoding,
    stip_features,
)
from fusion.stip_words import StipBagOfWords

SIZE, N_FRAMES, FPS = 64, 48, 30.0
ALL_VALID = np.ones(N_FRAMES, bool)


def smooth_texture(seed=1):
    """A smooth periodic random texture in [0, 1] and a function rendering it shifted by (dx, dy) px."""
    rng = np.random.default_rng(seed)
    texture = ndi.gaussian_filter(rng.standard_normal((SIZE, SIZE)), 3, mode="wrap")
    spectrum = np.fft.fft2((texture - texture.min()) / np.ptp(texture))
    ky, kx = np.fft.fftfreq(SIZE)[:, None], np.fft.fftfreq(SIZE)[None, :]

    def shifted(dx, dy):  # exact sub-pixel translation of the periodic texture
        return np.real(np.fft.ifft2(spectrum * np.exp(-2j * np.pi * (kx * dx + ky * dy))))

    return shifted


def moving_texture(position):
    """uint8 crops of the texture at ``position(t) -> (dx, dy)`` for each frame."""
    shifted = smooth_texture()
    return np.stack([np.round(40 + 180 * shifted(*position(t))) for t in range(N_FRAMES)]).astype(np.uint8)


def blob_crops(centres):
    """uint8 crops of a bright Gaussian blob (std 3 px) at ``centres[t]`` (None: no blob)."""
    yy, xx = np.mgrid[:SIZE, :SIZE]
    crops = np.full((len(centres), SIZE, SIZE), 60.0)
    for frame, centre in zip(crops, centres):
        if centre is not None:
            frame += 150 * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / 18)
    return np.round(crops).astype(np.uint8)


# --- the Harris 3-D response -------------------------------------------------------------

def reference_smoothing(volume, sigma2, tau2):
    """The separable Gaussian written as one 3-D kernel (radius int(3 std + 0.5), mirrored borders)."""
    def kernel(variance):
        std = np.sqrt(variance)
        offsets = np.arange(-int(3 * std + 0.5), int(3 * std + 0.5) + 1)
        weights = np.exp(-offsets**2 / (2 * variance))
        return weights / weights.sum()

    g_t, g_s = kernel(tau2), kernel(sigma2)
    return ndi.convolve(volume.astype(float), np.einsum("i,j,k->ijk", g_t, g_s, g_s), mode="reflect")


def reference_harris(volume, sigma2, tau2, s, k):
    """H = det(mu) - k trace(mu)^3 with loops over voxels and np.linalg.det of each 3x3 matrix."""
    smoothed = reference_smoothing(volume, sigma2, tau2)
    n_t, n_y, n_x = smoothed.shape
    gradient = np.zeros((3, n_t, n_y, n_x))  # x, y, t derivatives; central, one-sided at the ends
    for t in range(n_t):
        for y in range(n_y):
            for x in range(n_x):
                for axis, (index, size) in enumerate([(x, n_x), (y, n_y), (t, n_t)]):
                    lo, hi = max(index - 1, 0), min(index + 1, size - 1)
                    at = [[t, y, lo], [t, lo, x], [lo, y, x]][axis], [[t, y, hi], [t, hi, x], [hi, y, x]][axis]
                    gradient[axis, t, y, x] = (smoothed[tuple(at[1])] - smoothed[tuple(at[0])]) / (hi - lo)
    gradient *= np.array([np.sqrt(sigma2), np.sqrt(sigma2), np.sqrt(tau2)])[:, None, None, None]
    mu = np.empty((n_t, n_y, n_x, 3, 3))
    for i in range(3):
        for j in range(3):
            mu[..., i, j] = reference_smoothing(gradient[i] * gradient[j], s * sigma2, s * tau2)
    return np.linalg.det(mu) - k * np.trace(mu, axis1=-2, axis2=-1) ** 3


@pytest.mark.parametrize("sigma2, tau2", [(1.0, 1.0), (2.0, 0.5)])
def test_harris_response_matches_direct_computation(sigma2, tau2):
    volume = np.random.default_rng(0).standard_normal((7, 9, 10)).astype(np.float32)
    expected = reference_harris(volume, sigma2, tau2, s=2.0, k=0.005)
    response = harris3d_response(volume, sigma2=sigma2, tau2=tau2, s=2.0, k=0.005)
    assert response.shape == volume.shape
    np.testing.assert_allclose(response, expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_scale_space_matches_3d_convolution_even_with_kernels_longer_than_the_volume():
    volume = np.random.default_rng(1).random((3, 4, 5)).astype(np.float32)
    for sigma2, tau2 in [(1.0, 0.5), (16.0, 8.0)]:
        np.testing.assert_allclose(
            gaussian_scale_space(volume, sigma2, tau2), reference_smoothing(volume, sigma2, tau2), atol=1e-6
        )
    constant = np.full((5, 6, 6), 0.25, np.float32)
    np.testing.assert_allclose(gaussian_scale_space(constant, 4.0, 2.0), constant, atol=1e-6)


# (t, y, x) with t != y != x; 600 > 512 columns (OpenCV's channel limit) takes the sliced path.
@pytest.mark.parametrize("shape", [(11, 9, 13), (4, 3, 600), (6, 5, 1)])
@pytest.mark.parametrize("sigma2, tau2", [(4.0, 2.0), (16.0, 8.0)])
def test_scale_space_matches_scipy_gaussian_filter(shape, sigma2, tau2):
    volume = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    expected = ndi.gaussian_filter(
        volume.astype(float), (np.sqrt(tau2), np.sqrt(sigma2), np.sqrt(sigma2)), mode="reflect", truncate=3.0
    )
    smoothed = gaussian_scale_space(volume, sigma2, tau2)
    assert smoothed.shape == volume.shape and smoothed.dtype == np.float32
    np.testing.assert_allclose(smoothed, expected, atol=1e-5)


@pytest.mark.parametrize("shape", [(11, 9, 13), (2, 3, 600)])
def test_scale_space_gradient_matches_numpy(shape):
    from features.stip import _scale_space_gradient

    volume = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(
        _scale_space_gradient(volume, 4.0, 2.0), np.gradient(gaussian_scale_space(volume, 4.0, 2.0))
    )


@pytest.mark.parametrize("shape", [(6, 7, 8), (3, 4, 600)])
def test_local_maximum_filter_matches_scipy(shape):
    from features.stip import _maximum_filter_3x3x3

    volume = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    np.testing.assert_array_equal(_maximum_filter_3x3x3(volume), ndi.maximum_filter(volume, size=3))


# --- detection: where and when the motion changes ------------------------------------------

def test_static_scene_has_no_points_and_a_zero_encoding():
    crops = moving_texture(lambda t: (0, 0))
    table, (values, names) = stip_features(crops, ALL_VALID, FPS)
    assert table.values.shape == (0, len(POINT_COLUMNS) + len(DESCRIPTOR_NAMES))
    assert len(values) == len(names) == 10 + len(DESCRIPTOR_NAMES)
    assert np.all(values == 0)


@pytest.mark.parametrize("velocity", [(1.0, 0.0), (0.5, 0.3), (1.5, -1.0)])
def test_constant_translation_gives_no_points(velocity):
    # A pattern in uniform motion has gradients in a plane (Lt = -v . grad L), so mu has
    # rank 2, det(mu) = 0 and H = -k trace^3 < 0: Laptev's points need non-constant motion.
    crops = moving_texture(lambda t: (velocity[0] * t, velocity[1] * t))
    volume = normalise_volume(crops, ALL_VALID)
    points = detect_interest_points(volume, threshold=0.0, max_points=None)
    assert len(points) == 0
    response = harris3d_response(volume, sigma2=4.0, tau2=2.0)
    assert response[8:-8, 8:-8, 8:-8].max() <= 0


@pytest.mark.parametrize("position", [
    lambda t: (0.7 * max(t - 24, 0), 0.0),      # starts moving at frame 24
    lambda t: (0.7 * min(t, 48 - t), 0.0),      # reverses at frame 24
])
def test_points_fire_when_the_motion_changes(position):
    points = detect_interest_points(normalise_volume(moving_texture(position), ALL_VALID))
    assert len(points) >= 5
    assert np.all(np.abs(points[:, 2] - 24) <= 3)
    assert np.all(points[:, 5] > 1e-8)
    assert np.all(np.diff(points[:, 5]) <= 0)  # strongest first


def test_blob_that_appears_moves_and_stops_gives_points_at_both_events():
    # Absent for 12 frames, appears at x=20, moves right by 1 px per frame, stops at x=38 at frame 30.
    centres = [None] * 12 + [(20 + t - 12, 32) for t in range(12, 30)] + [(38, 32)] * (N_FRAMES - 30)
    table, (values, names) = stip_features(blob_crops(centres), ALL_VALID, FPS)
    x, y, t = table.values[:, 0], table.values[:, 1], table.values[:, 2]
    near_onset = (np.abs(x - 20) <= 2) & (np.abs(t - 12) <= 2)
    near_stop = (np.abs(x - 38) <= 2) & (np.abs(t - 30) <= 2)
    assert near_onset.any() and near_stop.any()
    assert np.all(near_onset | near_stop)
    assert np.all(np.abs(y - 32) <= 1)
    assert table.frame_rate == FPS
    encoding = dict(zip(names, values))
    assert encoding["stip_count"] == len(table.values)
    assert encoding["stip_rate"] == pytest.approx(len(table.values) / (N_FRAMES / FPS))


def test_points_avoid_the_crop_border_and_frames_without_a_face():
    crops = moving_texture(lambda t: (0.7 * max(t - 24, 0), 0.0))
    assert len(stip_features(crops, ALL_VALID, FPS)[0].values) > 0
    valid = ALL_VALID.copy()
    valid[23:26] = False  # the only event now touches missing frames: nothing may be reported
    assert len(stip_features(crops, valid, FPS)[0].values) == 0

    # Jitter of up to 2 px (non-constant motion everywhere) fires points all over the crop.
    jitter = np.random.default_rng(0).integers(-2, 3, (N_FRAMES, 2))
    points = detect_interest_points(normalise_volume(moving_texture(lambda t: tuple(jitter[t])), ALL_VALID))
    assert len(points) > 50
    for x, y, t, sigma2, tau2, _ in points:
        half_xy, half_t = cuboid_half_size(sigma2, tau2)
        assert half_xy <= x < SIZE - half_xy and half_xy <= y < SIZE - half_xy
        assert half_t <= t < N_FRAMES - half_t


def test_no_valid_frame_gives_no_points():
    table, (values, _) = stip_features(blob_crops([(30, 30)] * N_FRAMES), np.zeros(N_FRAMES, bool), FPS)
    assert table.values.shape[0] == 0
    assert np.all(values == 0) and np.isfinite(values).all()


def test_normalise_volume_removes_gain_and_repeats_the_last_valid_frame():
    crops = moving_texture(lambda t: (0.5 * t, 0))
    brighter = np.clip(crops.astype(int) // 2 + 100, 0, 255).astype(np.uint8)
    valid = ALL_VALID.copy()
    valid[[0, 10, 11]] = False
    volume = normalise_volume(crops, valid)
    np.testing.assert_allclose(volume.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(volume.std(axis=(1, 2)), 1, atol=1e-3)
    np.testing.assert_allclose(volume, normalise_volume(brighter, valid), atol=0.05)
    np.testing.assert_array_equal(volume[10], volume[9])
    np.testing.assert_array_equal(volume[11], volume[9])
    np.testing.assert_array_equal(volume[0], volume[1])


# --- descriptors ----------------------------------------------------------------------------

def test_descriptor_of_brightening_vertical_stripes():
    # Intensity varies along x only (gradient orientation 0) and rises over time (Lt > 0).
    t, _, x = np.mgrid[:20, :32, :32]
    volume = ((1 + 0.5 * np.sin(2 * np.pi * x / 8)) * (1 + 0.05 * t)).astype(np.float32)
    points = np.array([[16, 16, 10, 4.0, 2.0, 1.0], [12, 20, 9, 8.0, 4.0, 1.0]])
    descriptors = point_descriptors(volume, points)
    assert descriptors.shape == (2, len(DESCRIPTOR_NAMES))
    by_name = {name: descriptors[:, i] for i, name in enumerate(DESCRIPTOR_NAMES)}
    hog = descriptors[:, :32].reshape(2, 8, 4)
    assert np.all(hog[:, :, 0] > 0.1) and np.allclose(hog[:, :, 1:], 0, atol=1e-6)
    assert all(np.all(by_name[f"desc_c{cell}_lt_neg"] == 0) for cell in range(8))
    assert all(np.all(by_name[f"desc_c{cell}_lt_pos"] > 0) for cell in range(8))
    np.testing.assert_allclose(np.linalg.norm(descriptors[:, :32], axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(descriptors[:, 32:], axis=1), 1, rtol=1e-5)


def test_descriptor_cells_follow_t_y_x_layout():
    # Texture only right of, above and after the point: cell (t=1, y=0, x=1) = 4 + 0 + 1 = 5.
    t, y, x = np.mgrid[:20, :32, :32]
    volume = ((1 + 0.5 * np.sin(2 * np.pi * x / 8)) * ((x >= 19) & (y <= 13) & (t >= 12))).astype(np.float32)
    descriptor = point_descriptors(volume, np.array([[16, 16, 10, 4.0, 2.0, 1.0]]))[0]
    hog_energy = (descriptor[:32].reshape(8, 4) ** 2).sum(axis=1)
    assert np.argmax(hog_energy) == 5 and hog_energy[5] > 0.8
    lt_positive, lt_negative = descriptor[32:40], descriptor[40:]
    assert np.argmax(lt_positive) == 5 and lt_positive[5] > 0.9 and np.all(lt_negative == 0)


def test_descriptors_returned_by_detection_equal_point_descriptors():
    volume = normalise_volume(moving_texture(lambda t: (0.7 * min(t, 48 - t), 0.0)), ALL_VALID)
    points, descriptors = detect_interest_points(volume, return_descriptors=True)
    assert len(points) > 0
    np.testing.assert_allclose(descriptors, point_descriptors(volume, points), atol=1e-6)


# --- per-clip encoding ------------------------------------------------------------------------

def test_encoding_statistics_match_numpy():
    rng = np.random.default_rng(3)
    points = np.column_stack([
        rng.integers(8, 56, 20), rng.integers(8, 56, 20), rng.integers(6, 90, 20),
        np.full(20, 4.0), np.full(20, 2.0), rng.uniform(1e-8, 1e-5, 20),
    ])
    descriptors = rng.random((20, len(DESCRIPTOR_NAMES)))
    values, names = stip_encoding(points, descriptors, n_frames=100, fps=25.0, crop_size=64, threshold=1e-8)
    got = dict(zip(names, values))
    assert got["stip_count"] == 20 and got["stip_rate"] == pytest.approx(20 / 4.0)
    assert got["stip_x_mean"] == pytest.approx(points[:, 0].mean() / 64, rel=1e-5)
    assert got["stip_y_std"] == pytest.approx(points[:, 1].std() / 64, rel=1e-5)
    assert got["stip_t_std"] == pytest.approx(points[:, 2].std() / 25.0, rel=1e-5)
    assert got["stip_response_max"] == pytest.approx(points[:, 5].max(), rel=1e-5)
    assert got["stip_response_log_mean"] == pytest.approx(np.log(points[:, 5] / 1e-8).mean(), rel=1e-5)
    np.testing.assert_allclose(values[10:], descriptors.mean(axis=0), rtol=1e-5)
    empty, empty_names = stip_encoding(np.empty((0, 6)), np.empty((0, 48)), n_frames=0, fps=25.0, crop_size=64)
    assert empty_names == names and np.all(empty == 0)


# --- bag of visual words ----------------------------------------------------------------------

def clip_descriptors(rng, centre, n):
    return centre + 0.01 * rng.standard_normal((n, 4))


def test_bag_of_words_learns_only_from_fit_data_and_histograms_sum_to_one():
    rng = np.random.default_rng(0)
    a, b, elsewhere = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0]), np.array([0, 0, 5.0, 5.0])
    train = [clip_descriptors(rng, a, 30), clip_descriptors(rng, b, 30), np.empty((0, 4))]
    model = StipBagOfWords(n_words=2, random_state=0).fit(train)
    assert model.codebook_.shape == (2, 4)
    # The words are the training clusters; the far test points played no part.
    nearest = np.sort([np.argmin(np.linalg.norm(model.codebook_ - c, axis=1)) for c in (a, b)])
    np.testing.assert_array_equal(nearest, [0, 1])
    assert np.all(np.linalg.norm(model.codebook_ - a, axis=1).min() < 0.05)
    codebook = model.codebook_.copy()
    test = [clip_descriptors(rng, a, 9), np.vstack([clip_descriptors(rng, a, 3), clip_descriptors(rng, b, 1)]),
            np.empty((0, 4)), clip_descriptors(rng, elsewhere, 5)]
    histograms = model.transform(test)
    np.testing.assert_array_equal(model.codebook_, codebook)
    assert histograms.shape == (4, 2)
    word_a = np.argmin(np.linalg.norm(model.codebook_ - a, axis=1))
    assert histograms[0, word_a] == 1 and histograms[1, word_a] == 0.75
    np.testing.assert_array_equal(histograms[2], 0)
    np.testing.assert_allclose(histograms[[0, 1, 3]].sum(axis=1), 1)
    assert list(model.get_feature_names_out()) == ["stip_word_0", "stip_word_1"]
    refit = StipBagOfWords(n_words=2, random_state=0)
    refit.fit([clip_descriptors(rng, elsewhere, 20), clip_descriptors(rng, b, 20)])
    assert np.linalg.norm(refit.codebook_ - elsewhere, axis=1).min() < 0.05


def test_bag_of_words_rejects_bad_input():
    with pytest.raises(NotFittedError):
        StipBagOfWords().transform([np.zeros((3, 4))])
    with pytest.raises(FeatureError, match="at least n_words=64"):
        StipBagOfWords().fit([np.zeros((10, 4))])
    model = StipBagOfWords(n_words=2).fit([np.random.default_rng(0).random((10, 4))])
    with pytest.raises(FeatureError, match=r"X\[1\]"):
        model.transform([np.zeros((2, 4)), np.zeros((2, 5))])


# --- input validation and the points table -------------------------------------------------------

@pytest.mark.parametrize("crops, valid, fps, message", [
    (np.zeros((5, 8, 8), np.float32), np.ones(5, bool), 30.0, "uint8"),
    (np.zeros((5, 8, 9), np.uint8), np.ones(5, bool), 30.0, "shape"),
    (np.zeros((0, 8, 8), np.uint8), np.ones(0, bool), 30.0, "shape"),
    (np.zeros((5, 8, 8), np.uint8), np.ones(4, bool), 30.0, "valid"),
    (np.zeros((5, 8, 8), np.uint8), np.ones(5, int), 30.0, "valid"),
    (np.zeros((5, 8, 8), np.uint8), np.ones(5, bool), 0.0, "fps"),
    (np.zeros((5, 8, 8), np.uint8), np.ones(5, bool), float("nan"), "fps"),
])
def test_bad_clips_raise_feature_error(crops, valid, fps, message):
    with pytest.raises(FeatureError, match=message):
        check_face_clip(crops, valid, fps)


def test_non_positive_threshold_is_rejected():
    with pytest.raises(FeatureError, match="threshold"):
        stip_features(np.zeros((5, 16, 16), np.uint8), np.ones(5, bool), FPS, threshold=0.0)


def test_points_table_is_labelled():
    centres = [None] * 12 + [(20, 32)] * (N_FRAMES - 12)
    table, _ = stip_features(blob_crops(centres), ALL_VALID, FPS)
    assert table.names == POINT_COLUMNS + DESCRIPTOR_NAMES
    assert table.values.dtype == np.float32 and len(table.values) > 0
    assert "not frames" in table.meta["rows"]
    json.dumps(table.meta)
