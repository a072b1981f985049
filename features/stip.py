"""Space-time interest points (Laptev & Lindeberg's Harris 3-D) on a clip's face crops.

The path of one clip: ``normalise_volume`` (per-frame standardised grey volume) ->
``detect_interest_points`` (Harris 3-D response ``harris3d_response`` at several
``(sigma2, tau2)`` scales, local maxima above a threshold) -> ``point_descriptors``
(HOG/Lt histograms of the cuboid around each point) -> ``stip_encoding`` (a fixed-length
vector per clip) or, trained on the training speakers of a fold, a bag of words
(``fusion.stip_words.StipBagOfWords``).

Coordinates follow the crop arrays: a volume is indexed ``[t, y, x]`` (frame, row, column).
"""

import numbers

import cv2
import numpy as np
import scipy.ndimage as ndi

from .errors import FeatureError
from .stream import Stream

POINT_COLUMNS = ["x", "y", "t", "sigma2", "tau2", "response"]
DEFAULT_SCALES = ((4.0, 2.0), (8.0, 2.0), (4.0, 4.0), (8.0, 4.0))
# Absolute threshold on the scale-normalised H of per-frame standardised crops.  A static
# scene or a uniformly translating pattern gives H <= 0; on real RAVDESS face crops the
# positive maxima lie mostly between 1e-8 and 3e-5, so this keeps nearly all of them.
DEFAULT_THRESHOLD = 1e-8
N_ORIENTATIONS = 4
N_CELLS = 8  # 2 x 2 x 2 cells along (t, y, x), numbered 4 t + 2 y + x
DESCRIPTOR_NAMES = [
    f"desc_c{cell}_o{o}" for cell in range(N_CELLS) for o in range(N_ORIENTATIONS)
] + [f"desc_c{cell}_lt_{sign}" for sign in ("pos", "neg") for cell in range(N_CELLS)]
_MAX_CHANNELS = 512  # OpenCV images have at most this many channels (CV_CN_MAX)


def check_face_clip(crops, valid, fps) -> tuple[np.ndarray, np.ndarray, float]:
    """Validate a clip of aligned face crops and return it as arrays.

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
        Grey face crops, one per video frame (t >= 1).
    valid : np.ndarray [shape=(t,), dtype=bool]
        False where no face is known; those crops are ignored.
    fps : float > 0
        Video frame rate (Hz).

    Returns
    -------
    crops, valid, fps : the inputs as ``np.ndarray`` and ``float``.

    Raises
    ------
    FeatureError
        Wrong dtype, shape, length or frame rate; the message names the argument.
    """
    crops, valid = np.asarray(crops), np.asarray(valid)
    if crops.dtype != np.uint8:
        raise FeatureError(f"crops must be uint8 grey images, got dtype {crops.dtype}")
    if crops.ndim != 3 or 0 in crops.shape or crops.shape[1] != crops.shape[2]:
        raise FeatureError(f"crops must have shape (t >= 1, s >= 1, s), got {crops.shape}")
    if valid.dtype != bool or valid.shape != crops.shape[:1]:
        raise FeatureError(
            f"valid must be a bool array of shape ({crops.shape[0]},), "
            f"got {valid.dtype} {valid.shape}"
        )
    if not (isinstance(fps, numbers.Real) and np.isfinite(fps) and fps > 0):
        raise FeatureError(f"fps must be a positive finite number, got {fps!r}")
    return crops, valid, float(fps)


def normalise_volume(crops, valid) -> np.ndarray:
    """Grey face crops as a float volume with each frame standardised.

    Every frame is standardised to zero mean and unit variance (a frame whose standard
    deviation is below 1e-3 of the grey range only loses its mean).  This removes global
    gain and offset changes (auto exposure, flicker) between frames and between clips, so
    that one absolute threshold on the Harris response serves all clips.  Invalid frames
    repeat the latest valid frame before them (leading ones the first valid frame), so
    they add no motion; points near them are discarded by
    ``detect_interest_points(valid=...)``.

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
    valid : np.ndarray [shape=(t,), dtype=bool], with at least one True

    Returns
    -------
    volume : np.ndarray [shape=(t, s, s), dtype=float32]
    """
    volume = crops.astype(np.float32) / 255
    mean = volume.mean(axis=(1, 2), keepdims=True)
    std = volume.std(axis=(1, 2), keepdims=True)
    volume = (volume - mean) / np.maximum(std, 1e-3)
    # Index of the latest valid frame at or before each frame.
    latest = np.maximum.accumulate(np.where(valid, np.arange(len(valid)), -1))
    latest[latest < 0] = np.flatnonzero(valid)[0]
    return volume[latest]


def gaussian_scale_space(volume, sigma2, tau2) -> np.ndarray:
    """Linear space-time scale-space ``L = g(.; sigma2, tau2) * f``.

    Parameters
    ----------
    volume : np.ndarray [shape=(t, y, x)]
    sigma2 : float > 0
        Spatial variance (px^2).
    tau2 : float > 0
        Temporal variance (frames^2).

    Returns
    -------
    L : np.ndarray [shape=(t, y, x), dtype=float32]
        The volume convolved with the separable Gaussian
        ``g = exp(-(x^2 + y^2) / 2 sigma2 - t^2 / 2 tau2) / normaliser``
        (truncated at 3 standard deviations, keeping 99.7 % of its mass; borders mirrored
        as in scipy's "reflect").

    References
    ----------
    .. [1] I. Laptev and T. Lindeberg, "On space-time interest points", International
           Journal of Computer Vision 64(2/3), 107-123, 2005, eq. (1)-(2).
    """
    volume = np.asarray(volume, np.float32)
    smoothed = np.empty_like(volume)
    _smooth(volume, sigma2, tau2, smoothed)
    return smoothed


def _smooth(volume, sigma2, tau2, out, frames=np.s_[:]) -> None:
    """``gaussian_scale_space`` of a float32 volume, written into ``out`` (may be ``volume``).

    Only the frames ``out[frames]`` (a slice) are complete; the others are smoothed along t only.
    """
    # Separable: one OpenCV filter2D per axis (faster here than scipy.ndimage, and than
    # sepFilter2D), none of which mixes frames.  t: the columns of the (t, y x) image;
    # y: the columns of the (t, y) image whose x columns are channels; x: the rows of the
    # (t y, x) image.
    n_frames, _, width = volume.shape
    cv2.filter2D(
        volume.reshape(n_frames, -1), -1, gaussian_kernel(np.sqrt(tau2))[:, np.newaxis],
        dst=out.reshape(n_frames, -1), borderType=cv2.BORDER_REFLECT,
    )
    spatial, out = gaussian_kernel(np.sqrt(sigma2))[np.newaxis], out[frames]
    _filter_t_y(lambda image, dst: cv2.filter2D(image, -1, spatial, dst=dst, borderType=cv2.BORDER_REFLECT), out, out)
    rows = out.reshape(-1, width)
    cv2.filter2D(rows, -1, spatial, dst=rows, borderType=cv2.BORDER_REFLECT)


def _filter_t_y(filter_image, volume, out) -> None:
    """Apply ``filter_image(src, dst)``, an OpenCV 2-D filter, to a (t, y, x) volume seen as
    a (t, y) image whose x columns are independent channels (so columns never mix).

    OpenCV takes at most 512 channels, so wider volumes go in slices (through copies).
    """
    if volume.shape[2] <= _MAX_CHANNELS:
        filter_image(volume, out)
        return
    for start in range(0, volume.shape[2], _MAX_CHANNELS):
        columns = np.s_[:, :, start:start + _MAX_CHANNELS]
        out[columns] = filter_image(volume[columns], None)


def gaussian_kernel(std, truncate=3.0) -> np.ndarray:
    """Sampled, unit-sum Gaussian of standard deviation ``std``, radius ``int(truncate std + 0.5)``
    (the kernel of ``scipy.ndimage.gaussian_filter1d(..., truncate=truncate)``).

    Returns
    -------
    kernel : np.ndarray [shape=(2 radius + 1,), dtype=float32]
    """
    offsets = np.arange(-int(truncate * std + 0.5), int(truncate * std + 0.5) + 1)
    kernel = np.exp(-0.5 * (offsets / std) ** 2)
    return (kernel / kernel.sum()).astype(np.float32)


def _scale_space_gradient(volume, sigma2, tau2) -> np.ndarray:
    """First derivatives ``[Lt, Ly, Lx]`` of the scale-space, shape (3, t, y, x).

    Central differences, one-sided at the ends (as ``np.gradient``).
    """
    if np.ndim(volume) != 3 or min(np.shape(volume)) < 2:
        raise FeatureError(f"a space-time gradient needs a (t, y, x) volume of 2x2x2 or more, got {np.shape(volume)}")
    smoothed = gaussian_scale_space(volume, sigma2, tau2)
    n_frames, _, width = smoothed.shape
    gradient = np.empty((3,) + smoothed.shape, np.float32)
    # (f[i + 1] - f[i - 1]) / 2 along each axis, in the layouts of ``_smooth``; replicated
    # borders give (f[1] - f[0]) / 2 at the ends, doubled below into one-sided differences.
    difference, border = np.array([[-0.5, 0.0, 0.5]], np.float32), cv2.BORDER_REPLICATE
    cv2.filter2D(
        smoothed.reshape(n_frames, -1), -1, difference.T, dst=gradient[0].reshape(n_frames, -1), borderType=border
    )
    _filter_t_y(
        lambda image, dst: cv2.filter2D(image, -1, difference, dst=dst, borderType=border), smoothed, gradient[1]
    )
    cv2.filter2D(smoothed.reshape(-1, width), -1, difference, dst=gradient[2].reshape(-1, width), borderType=border)
    for axis, derivative in enumerate(gradient):
        along_axis = np.moveaxis(derivative, axis, 0)
        along_axis[0] *= 2
        along_axis[-1] *= 2
    return gradient


def harris3d_response(volume, *, sigma2, tau2, s=2.0, k=0.005) -> np.ndarray:
    """Laptev's space-time Harris response ``H = det(mu) - k trace^3(mu)``.

    Derivatives are scale-normalised (``sqrt(sigma2) Lx``, ``sqrt(sigma2) Ly``,
    ``sqrt(tau2) Lt``, i.e. gamma = 1) so that responses at different scales are
    comparable and one threshold serves all scales.

    Parameters
    ----------
    volume : np.ndarray [shape=(t, y, x)]
        Grey volume, e.g. from ``normalise_volume``.
    sigma2, tau2 : float > 0
        Local spatial (px^2) and temporal (frames^2) variances.
    s : float > 0
        Integration scales are ``s * sigma2`` and ``s * tau2``.
    k : float
        Harris constant; ``H > 0`` requires ``k < 1/27``.

    Returns
    -------
    H : np.ndarray [shape=(t, y, x), dtype=float32]
        Positive only where the gradient varies in all three directions: a static scene
        (Lt = 0) or a pattern in uniform motion (Lt = -v . grad L) makes ``mu`` singular
        and ``H = -k trace^3 <= 0``.

    References
    ----------
    .. [1] I. Laptev and T. Lindeberg, "On space-time interest points", IJCV 64(2/3),
           2005, eq. (7)-(8).
    """
    gradient = _scale_space_gradient(volume, sigma2, tau2)
    return _harris_from_gradient(gradient, sigma2, tau2, s, k)


def _harris_from_gradient(gradient, sigma2, tau2, s, k, box=np.s_[:, :]) -> np.ndarray:
    """``harris3d_response`` from the scale-space gradient, on the voxels ``[box]`` only.

    ``box`` is a pair of slices (frames, rows); work that only other voxels need is skipped.
    """
    # 1. Scale-normalised first derivatives of L = g(.; sigma2, tau2) * f: sqrt(sigma2) Lx,
    #    sqrt(sigma2) Ly, sqrt(tau2) Lt (the factors are applied to their products below).
    lt, ly, lx = gradient
    # 2. Second-moment matrix mu = g(.; s sigma2, s tau2) * (grad L)(grad L)^T: its six
    #    distinct entries, each smoothed in place.
    xt_norm = np.sqrt(sigma2 * tau2)
    products = [
        (lx, lx, sigma2), (ly, ly, sigma2), (lt, lt, tau2), (lx, ly, sigma2), (lx, lt, xt_norm), (ly, lt, xt_norm),
    ]
    mu = np.empty((6,) + lx.shape, np.float32)
    for entry, (a, b, norm) in zip(mu, products):
        _smooth(cv2.multiply(a, b, dst=entry, scale=norm), s * sigma2, s * tau2, out=entry, frames=box[0])
    xx, yy, tt, xy, xt, yt = (entry[box] for entry in mu)
    # 3. H = det(mu) - k trace^3(mu), the determinant expanded along the first row.  In
    #    place, overwriting entries of mu after their last use.
    scratch = np.empty_like(xx)
    response = np.multiply(yy, tt)
    response -= np.multiply(yt, yt, out=scratch)
    response *= xx  # xx (yy tt - yt^2)
    trace = np.add(xx, yy, out=xx)
    trace += tt
    tt *= xy
    tt -= np.multiply(yt, xt, out=scratch)
    tt *= xy
    response -= tt  # - xy (xy tt - yt xt)
    yt *= xy
    yt -= np.multiply(yy, xt, out=scratch)
    yt *= xt
    response += yt  # + xt (xy yt - yy xt)
    cube = np.multiply(trace, trace, out=scratch)
    cube *= trace
    cube *= k
    response -= cube  # - k trace^3
    return response


def _maximum_filter_3x3x3(volume) -> np.ndarray:
    """``scipy.ndimage.maximum_filter(volume, size=3)``, with OpenCV's faster 3x3 dilation."""
    square = np.ones((3, 3), np.uint8)
    maxima = np.empty_like(volume)
    _filter_t_y(
        lambda image, dst: cv2.dilate(image, square, dst=dst, borderType=cv2.BORDER_REPLICATE), volume, maxima
    )
    rows = maxima.reshape(-1, volume.shape[2])
    cv2.dilate(rows, square[:1], dst=rows, borderType=cv2.BORDER_REPLICATE)
    return maxima


def cuboid_half_size(sigma2, tau2, s=2.0) -> tuple[int, int]:
    """Half-sizes ``(spatial px, temporal frames)`` of the cuboid around a point.

    Two standard deviations of the integration scale: ``ceil(2 sqrt(s sigma2))`` and
    ``ceil(2 sqrt(s tau2))``.  Points whose cuboid leaves the volume (or touches an
    invalid frame) are not detected, and descriptors pool over exactly this cuboid.
    """
    return int(np.ceil(2 * np.sqrt(s * sigma2))), int(np.ceil(2 * np.sqrt(s * tau2)))


def detect_interest_points(
    volume,
    valid=None,
    *,
    scales=DEFAULT_SCALES,
    s=2.0,
    k=0.005,
    threshold=DEFAULT_THRESHOLD,
    max_points=200,
    return_descriptors=False,
):
    """Space-time interest points: local maxima of the Harris 3-D response.

    At each ``(sigma2, tau2)`` scale a point is a voxel where ``H`` is the maximum of its
    3x3x3 neighbourhood and ``H > threshold``, and whose cuboid (``cuboid_half_size``)
    lies inside the volume and over valid frames only.  Scales are detected independently
    (no scale selection), as in Laptev's multi-scale detector.

    Parameters
    ----------
    volume : np.ndarray [shape=(t, y, x)]
        Grey volume; the default ``threshold`` is meant for ``normalise_volume`` output
        (per-frame unit variance).
    valid : np.ndarray [shape=(t,), dtype=bool] or None
        Frames that hold real data; None means all.
    scales : sequence of (sigma2, tau2)
        Local spatial (px^2) and temporal (frames^2) variances.
    s, k : float
        See ``harris3d_response``.
    threshold : float >= 0
        Absolute threshold on the scale-normalised ``H``.
    max_points : int > 0 or None
        Keep only the strongest points (None keeps all).
    return_descriptors : bool
        Also return ``point_descriptors`` of the points, computed from the same
        scale-space (cheaper than calling it afterwards).

    Returns
    -------
    points : np.ndarray [shape=(n, 6), dtype=float64]
        Columns ``POINT_COLUMNS``: x (px), y (px), t (frame), sigma2, tau2, response;
        sorted by decreasing response.
    descriptors : np.ndarray [shape=(n, 48), dtype=float32], if ``return_descriptors``

    References
    ----------
    .. [1] I. Laptev and T. Lindeberg, "On space-time interest points", IJCV 64(2/3), 2005.
    """
    volume = np.asarray(volume, np.float32)
    n_frames, height, width = volume.shape
    valid = np.ones(n_frames, bool) if valid is None else np.asarray(valid, bool)
    points = [np.empty((0, len(POINT_COLUMNS)))]
    descriptors = [np.empty((0, len(DESCRIPTOR_NAMES)), np.float32)]
    for sigma2, tau2 in scales:
        half_xy, half_t = cuboid_half_size(sigma2, tau2, s)
        if n_frames <= 2 * half_t or min(height, width) <= 2 * half_xy:
            continue  # no cuboid fits in the volume (e.g. a one-frame clip): no point at this scale
        gradient = _scale_space_gradient(volume, sigma2, tau2)
        # 1. H only on the frames and rows where a cuboid fits, plus one on each side for the
        #    3x3x3 maxima (whole rows: cropping x too would slow numpy down more than it
        #    saves): response[i, j, l] is H at (t0 + i, y0 + j, l).
        t0, y0 = half_t - 1, half_xy - 1
        box = np.s_[t0:n_frames - t0, y0:height - y0]
        response = _harris_from_gradient(gradient, sigma2, tau2, s, k, box)
        # 2. Local maxima over the 3x3x3 space-time neighbourhood, above the threshold.
        peaks = (response == _maximum_filter_3x3x3(response)) & (response > threshold)
        # 3. Keep points whose cuboid is inside the crop and over valid frames only.
        peaks[~ndi.binary_erosion(valid, np.ones(2 * half_t + 1, bool), border_value=0)[box[0]]] = False
        peaks[:, [0, -1]] = peaks[:, :, :half_xy] = peaks[:, :, width - half_xy:] = False
        t, y, x = np.unravel_index(np.flatnonzero(peaks), peaks.shape)  # faster than np.nonzero
        found = np.column_stack(
            [x, y + y0, t + t0, np.full(len(t), sigma2), np.full(len(t), tau2), response[t, y, x]]
        )
        points.append(found)
        if return_descriptors:
            descriptors.append(_describe(gradient, found, half_xy, half_t))
    points, descriptors = np.concatenate(points), np.concatenate(descriptors)
    strongest = np.argsort(-points[:, 5], kind="stable")[:max_points]
    if return_descriptors:
        return points[strongest], descriptors[strongest]
    return points[strongest]


def point_descriptors(volume, points, *, s=2.0) -> np.ndarray:
    """Local space-time descriptors of the cuboids around interest points.

    The cuboid of half-size ``cuboid_half_size(sigma2, tau2, s)`` around each point is cut
    into 2x2x2 cells (t, y, x).  In each cell: a histogram of spatial gradient orientation
    (``N_ORIENTATIONS`` unsigned bins over [0, pi), weighted by gradient magnitude; the HOG
    part) and the summed positive and negative temporal derivative ``Lt`` (a cheap stand-in
    for Laptev's optical-flow histogram, HOF).  Gradients are those of the scale-space at
    the point's scale.  The two parts are L2-normalised separately (a part with no
    gradient stays 0).

    Parameters
    ----------
    volume : np.ndarray [shape=(t, y, x)]
        The volume the points were detected in.
    points : np.ndarray [shape=(n, 6)]
        From ``detect_interest_points``; each cuboid must lie inside the volume.
    s : float
        Integration-scale factor used at detection.

    Returns
    -------
    descriptors : np.ndarray [shape=(n, 48), dtype=float32]
        Columns ``DESCRIPTOR_NAMES``: 8 cells x 4 orientations, then Lt > 0 and Lt < 0
        x 8 cells.

    References
    ----------
    .. [1] I. Laptev, M. Marszalek, C. Schmid and B. Rozenfeld, "Learning realistic human
           actions from movies", CVPR 2008 (HOG/HOF descriptors of space-time cuboids).
    """
    volume = np.asarray(volume, np.float32)
    points = np.asarray(points, float).reshape(-1, len(POINT_COLUMNS))
    descriptors = np.zeros((len(points), len(DESCRIPTOR_NAMES)), np.float32)
    for sigma2, tau2 in np.unique(points[:, 3:5], axis=0):
        at_scale = (points[:, 3] == sigma2) & (points[:, 4] == tau2)
        gradient = _scale_space_gradient(volume, sigma2, tau2)
        descriptors[at_scale] = _describe(gradient, points[at_scale], *cuboid_half_size(sigma2, tau2, s))
    return descriptors


def _describe(gradient, points, half_xy, half_t) -> np.ndarray:
    """Descriptors (see ``point_descriptors``) of points of one scale, from its gradient."""
    lt, ly, lx = gradient
    # 1. Voxel indices of every point's cuboid, shape (n, cuboid voxels), and their cells
    #    (0 before the centre, 1 from it on, along each of t, y, x).
    _, height, width = lt.shape
    dt, dy, dx = np.meshgrid(
        np.arange(-half_t, half_t + 1), np.arange(-half_xy, half_xy + 1), np.arange(-half_xy, half_xy + 1),
        indexing="ij",
    )
    x, y, t = points[:, :3].astype(np.intp).T
    voxels = ((t * height + y) * width + x)[:, None] + ((dt * height + dy) * width + dx).ravel()
    cell = ((dt >= 0) * 4 + (dy >= 0) * 2 + (dx >= 0)).ravel()
    offset = np.arange(len(points))[:, None] * N_CELLS + cell
    # 2. HOG part: per cell, gradient magnitude summed per unsigned orientation bin.
    gx, gy, temporal = (np.take(derivative, voxels) for derivative in (lx, ly, lt))
    orientation = np.minimum((np.arctan2(gy, gx) % np.pi) * (N_ORIENTATIONS / np.pi), N_ORIENTATIONS - 1)
    hog = np.bincount(
        (offset * N_ORIENTATIONS + orientation.astype(np.intp)).ravel(),
        weights=np.hypot(gx, gy).ravel(),
        minlength=len(points) * N_CELLS * N_ORIENTATIONS,
    ).reshape(len(points), N_CELLS * N_ORIENTATIONS)
    # 3. Temporal part: per cell, the summed positive and negative Lt.
    size = len(points) * N_CELLS
    positive = np.bincount(offset.ravel(), weights=np.maximum(temporal, 0).ravel(), minlength=size)
    negative = np.bincount(offset.ravel(), weights=np.maximum(-temporal, 0).ravel(), minlength=size)
    lt_hist = np.hstack([positive.reshape(len(points), N_CELLS), negative.reshape(len(points), N_CELLS)])
    # 4. L2-normalise each part.
    return np.hstack([_unit_rows(hog), _unit_rows(lt_hist)]).astype(np.float32)


def _unit_rows(matrix) -> np.ndarray:
    """Rows scaled to unit L2 norm; all-zero rows stay zero."""
    norm = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norm, out=np.zeros(matrix.shape), where=norm > 0)


def stip_encoding(points, descriptors, *, n_frames, fps, crop_size, threshold=DEFAULT_THRESHOLD):
    """A fixed-length, training-free summary of a clip's interest points.

    Parameters
    ----------
    points : np.ndarray [shape=(n, 6)]
        From ``detect_interest_points`` (n may be 0).
    descriptors : np.ndarray [shape=(n, 48)]
        From ``point_descriptors``.
    n_frames : int >= 0
        Number of valid frames the points come from.
    fps : float > 0
        Frame rate (Hz).
    crop_size : int
        Side of the face crop (px); positions are given as fractions of it.
    threshold : float > 0
        Detection threshold; the log response is ``ln(H / threshold)``.

    Returns
    -------
    values : np.ndarray [shape=(10 + 48,), dtype=float32]
    names : list of str
        ``stip_count``, ``stip_rate`` (points per second of valid video),
        ``stip_x_mean``, ``stip_y_mean``, ``stip_x_std``, ``stip_y_std`` (fractions of the
        crop side), ``stip_t_std`` (s), ``stip_response_mean``, ``stip_response_max``,
        ``stip_response_log_mean`` (mean of ``ln(H / threshold)``, > 0), then
        ``stip_<descriptor name>_mean``.  With no points every value is 0, so the vector
        is finite for any clip.
    """
    points = np.asarray(points, float).reshape(-1, len(POINT_COLUMNS))
    descriptors = np.asarray(descriptors, float).reshape(-1, len(DESCRIPTOR_NAMES))
    names = [
        "stip_count", "stip_rate", "stip_x_mean", "stip_y_mean", "stip_x_std", "stip_y_std",
        "stip_t_std", "stip_response_mean", "stip_response_max", "stip_response_log_mean",
    ] + [f"stip_{name}_mean" for name in DESCRIPTOR_NAMES]
    if len(points) == 0:
        return np.zeros(len(names), np.float32), names
    x, y = points[:, 0] / crop_size, points[:, 1] / crop_size
    seconds, response = points[:, 2] / fps, points[:, 5]
    summary = [
        len(points), len(points) * fps / n_frames, x.mean(), y.mean(), x.std(), y.std(),
        seconds.std(), response.mean(), response.max(), np.log(response / threshold).mean(),
    ]
    return np.concatenate([summary, descriptors.mean(axis=0)]).astype(np.float32), names


def stip_features(
    crops,
    valid,
    fps,
    *,
    scales=DEFAULT_SCALES,
    s=2.0,
    k=0.005,
    threshold=DEFAULT_THRESHOLD,
    max_points=200,
) -> tuple[Stream, tuple[np.ndarray, list]]:
    """Space-time interest points of a clip's face crops, with descriptors and encoding.

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
        Aligned grey face crops.
    valid : np.ndarray [shape=(t,), dtype=bool]
        False where no face is known.  A clip with no valid frame has no points.
    fps : float > 0
        Video frame rate (Hz).
    scales, s, k, threshold, max_points
        See ``detect_interest_points``.

    Returns
    -------
    points : Stream [shape=(n, 6 + 48)]
        One row per interest point (not per frame), columns ``POINT_COLUMNS`` then
        ``DESCRIPTOR_NAMES``; ``t`` is the frame index, so ``frame_rate`` (= fps) turns
        it into seconds.
    encoding : (np.ndarray [shape=(58,)], list of str)
        ``stip_encoding`` of the points.
    """
    crops, valid, fps = check_face_clip(crops, valid, fps)
    if not threshold > 0:
        raise FeatureError(f"threshold must be positive (the encoding uses ln(H / threshold)), got {threshold}")
    if valid.any():
        volume = normalise_volume(crops, valid)
        points, descriptors = detect_interest_points(
            volume, valid, scales=scales, s=s, k=k, threshold=threshold, max_points=max_points,
            return_descriptors=True,
        )
    else:
        points = np.empty((0, len(POINT_COLUMNS)))
        descriptors = np.empty((0, len(DESCRIPTOR_NAMES)), np.float32)
    table = Stream(
        np.hstack([points, descriptors]),
        POINT_COLUMNS + DESCRIPTOR_NAMES,
        frame_rate=fps,
        meta={
            "rows": "space-time interest points, not frames",
            "coordinates": "x, y in crop pixels; t in frames (divide by frame_rate for seconds)",
            "scales": [list(map(float, scale)) for scale in scales],
            "s": s, "k": k, "threshold": threshold, "max_points": max_points,
        },
    )
    encoding = stip_encoding(
        points, descriptors, n_frames=int(valid.sum()), fps=fps, crop_size=crops.shape[1], threshold=threshold
    )
    return table, encoding
