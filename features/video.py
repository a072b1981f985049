"""Video features of a clip from its aligned grey face crops: HOG, space-time interest points
and a few face crops themselves.

The path of one clip: ``extract.faces`` gives ``crops (t, s, s) uint8``, ``valid (t,)`` and
``fps`` -> ``video_features`` -> frame-level streams (``hog``, ``stip_points``, opt-in
``face_frames``) and per-clip vectors (``hog`` functionals, ``hog_summary`` of the mean face,
``stip`` encoding, the fraction of frames with a face beside ``face_frames``).

HOG follows OMSN-ER (HOG of each face frame) with Dalal & Triggs' settings: 8x8-pixel cells,
2x2-cell blocks, 9 unsigned orientation bins, L2-Hys block normalisation; on a 64x64 crop
that is 7 x 7 blocks x 2 x 2 cells x 9 bins = 1764 values per frame.  The "summary image"
of Kirar et al. (mean of the clip's frames) is described by its HOG instead of ResNet-50,
whose weights we cannot download.
"""

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from .errors import FeatureError
from .stip import DEFAULT_SCALES, DEFAULT_THRESHOLD, check_face_clip, stip_features
from .stream import Stream


def hog_descriptors(images, *, pixels_per_cell=8, cells_per_block=2, orientations=9) -> np.ndarray:
    """Histograms of oriented gradients of a batch of grey images.

    The same values as ``skimage.feature.hog(image, orientations, (c, c), (b, b),
    block_norm="L2-Hys")`` for each image (to float32 rounding), computed for the whole batch
    at once and without arctan2: about 0.2-0.3 ms per 64x64 frame, several times faster
    than calling skimage per frame.

    Parameters
    ----------
    images : np.ndarray [shape=(n, h, w)]
        Grey images, e.g. face crops scaled to [0, 1]; computed in float32.
    pixels_per_cell : int > 0
        Side of a square cell (px); pixels beyond the last whole cell are ignored.
    cells_per_block : int > 0
        Side of a square block (cells); blocks overlap with a stride of one cell.
    orientations : int > 0
        Unsigned orientation bins over [0, 180) degrees.

    Returns
    -------
    hog : np.ndarray [shape=(n, n_blocks_y * n_blocks_x * cells_per_block^2 * orientations)]
        Flattened in the order (block row, block column, cell row, cell column,
        orientation), as ``hog_names``.

    Raises
    ------
    FeatureError
        Not a stack of 2-D images, or images smaller than one block.

    References
    ----------
    .. [1] N. Dalal and B. Triggs, "Histograms of oriented gradients for human detection",
           CVPR 2005.
    """
    images = np.asarray(images, np.float32)
    cell, block = pixels_per_cell, cells_per_block
    if images.ndim != 3 or min(images.shape[1:]) < cell * block:
        raise FeatureError(
            f"HOG needs images of shape (n, h, w) with h, w >= one block ({block} x {cell} px), "
            f"got {images.shape}"
        )
    n_images, height, width = images.shape
    n_cells_y, n_cells_x = height // cell, width // cell
    # 1. Centred differences, zero on the image border.
    g_row, g_col = np.zeros_like(images), np.zeros_like(images)
    g_row[:, 1:-1] = images[:, 2:] - images[:, :-2]
    g_col[:, :, 1:-1] = images[:, :, 2:] - images[:, :, :-2]
    g_row, g_col = g_row[:, :n_cells_y * cell, :n_cells_x * cell], g_col[:, :n_cells_y * cell, :n_cells_x * cell]
    # 2. Unsigned orientation bin [i, i + 1) * 180 / orientations degrees, without arctan2
    #    (ten times slower): fold the gradient into the upper half-plane, then count the bin
    #    boundaries b it has passed, where sin(angle - b) >= 0.
    folded = (g_row < 0) | ((g_row == 0) & (g_col < 0))
    up, across = np.abs(g_row), np.where(folded, -g_col, g_col)
    bins = np.zeros(up.shape, np.intp)
    for boundary in np.deg2rad(np.arange(1, orientations) * 180 / orientations):
        bins += up * np.float32(np.cos(boundary)) >= across * np.float32(np.sin(boundary))
    # 3. Cell histograms: mean over the cell's pixels of the gradient magnitude per bin.
    magnitude = np.sqrt(g_row * g_row + g_col * g_col) / cell**2
    cells = (np.arange(n_cells_y * cell) // cell)[:, None] * n_cells_x + np.arange(n_cells_x * cell) // cell
    index = (np.arange(n_images)[:, None, None] * (n_cells_y * n_cells_x) + cells) * orientations + bins
    histogram = np.bincount(
        index.ravel(), weights=magnitude.ravel(), minlength=n_images * n_cells_y * n_cells_x * orientations,
    ).reshape(n_images, n_cells_y, n_cells_x, orientations)
    # 4. Overlapping blocks of block x block cells, L2-Hys normalised: L2, clip at 0.2, L2.
    blocks = np.lib.stride_tricks.sliding_window_view(histogram, (block, block), axis=(1, 2))
    blocks = blocks.transpose(0, 1, 2, 4, 5, 3)  # (n, block row, block col, cell row, cell col, bin)
    eps = 1e-5
    blocks = blocks / np.sqrt(np.sum(blocks**2, axis=(3, 4, 5), keepdims=True) + eps**2)
    blocks = np.minimum(blocks, 0.2)
    blocks = blocks / np.sqrt(np.sum(blocks**2, axis=(3, 4, 5), keepdims=True) + eps**2)
    return blocks.reshape(n_images, int(np.prod(blocks.shape[1:])))


def hog_names(size, *, pixels_per_cell=8, cells_per_block=2, orientations=9) -> list:
    """Names ``hog_b<row>_<col>_c<row>_<col>_o<bin>`` of the ``hog_descriptors`` of a square image."""
    n_blocks = size // pixels_per_cell - cells_per_block + 1
    return [
        f"hog_b{block_y}_{block_x}_c{cell_y}_{cell_x}_o{bin_}"
        for block_y in range(n_blocks)
        for block_x in range(n_blocks)
        for cell_y in range(cells_per_block)
        for cell_x in range(cells_per_block)
        for bin_ in range(orientations)
    ]


def hog_stream(crops, valid, fps, *, pixels_per_cell=8, cells_per_block=2, orientations=9) -> Stream:
    """HOG of every face crop of a clip, as a frame-level stream.

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
        Aligned grey face crops (scaled to [0, 1] before the gradients).
    valid : np.ndarray [shape=(t,), dtype=bool]
        False where no face is known: those rows are NaN.
    fps : float > 0
        Video frame rate (Hz), the stream's frame rate.
    pixels_per_cell, cells_per_block, orientations
        See ``hog_descriptors``.

    Returns
    -------
    hog : Stream [shape=(t, d)]
        Columns ``hog_names(s, ...)``; d = 1764 for the defaults on 64x64 crops.
    """
    crops, valid, fps = check_face_clip(crops, valid, fps)
    settings = dict(pixels_per_cell=pixels_per_cell, cells_per_block=cells_per_block, orientations=orientations)
    names = hog_names(crops.shape[1], **settings)
    values = np.full((len(crops), len(names)), np.nan, np.float32)
    values[valid] = hog_descriptors(crops[valid].astype(np.float32) / 255, **settings)
    return Stream(values, names, frame_rate=fps, meta={**settings, "block_norm": "L2-Hys"})


def frame_functionals(stream) -> tuple[np.ndarray, list]:
    """Per-clip statistics of a frame-level stream over its valid (all-finite) frames.

    Parameters
    ----------
    stream : Stream [shape=(t, d)]

    Returns
    -------
    values : np.ndarray [shape=(4 d,), dtype=float32]
        Mean and standard deviation over valid frames, then mean and standard deviation
        of the absolute frame-to-frame difference over pairs of adjacent valid frames.
        NaN where there is no valid frame (or no adjacent valid pair, for the last two).
    names : list of str
        ``<name>_mean``, ``<name>_std``, ``<name>_absdiff_mean``, ``<name>_absdiff_std``,
        each block over all names.
    """
    values = np.asarray(stream.values, float)
    frames = values[np.isfinite(values).all(axis=1)]
    differences = np.abs(np.diff(values, axis=0))
    differences = differences[np.isfinite(differences).all(axis=1)]

    def mean_std(rows):
        if len(rows) == 0:
            return np.full(2 * values.shape[1], np.nan)
        return np.concatenate([rows.mean(axis=0), rows.std(axis=0)])

    names = [
        f"{name}_{statistic}"
        for statistic in ("mean", "std", "absdiff_mean", "absdiff_std")
        for name in stream.names
    ]
    return np.concatenate([mean_std(frames), mean_std(differences)]).astype(np.float32), names


def summary_image(crops, valid) -> np.ndarray:
    """The clip's mean face: the average of its valid crops (Kirar et al.'s summary image).

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
    valid : np.ndarray [shape=(t,), dtype=bool]

    Returns
    -------
    image : np.ndarray [shape=(s, s), dtype=float64]
        Values in [0, 1]; all NaN if no frame is valid.
    """
    crops, valid = np.asarray(crops), np.asarray(valid, bool)
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2] or valid.shape != crops.shape[:1]:
        raise FeatureError(f"need square crops (t, s, s) and a valid mask (t,), got {crops.shape} and {valid.shape}")
    if not valid.any():
        return np.full(crops.shape[1:], np.nan)
    return crops[valid].mean(axis=0) / 255


def summary_hog(crops, valid, *, pixels_per_cell=8, cells_per_block=2, orientations=9):
    """HOG of the clip's summary image (``summary_image``).

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
    valid : np.ndarray [shape=(t,), dtype=bool]
    pixels_per_cell, cells_per_block, orientations
        See ``hog_descriptors``.

    Returns
    -------
    values : np.ndarray [shape=(d,), dtype=float32]
        NaN if no frame is valid.
    names : list of str
        ``hog_summary_<hog name without the hog_ prefix>``.
    """
    settings = dict(pixels_per_cell=pixels_per_cell, cells_per_block=cells_per_block, orientations=orientations)
    image = summary_image(crops, valid)
    names = ["hog_summary_" + name.removeprefix("hog_") for name in hog_names(image.shape[0], **settings)]
    if np.isnan(image).any():
        return np.full(len(names), np.nan, np.float32), names
    return hog_descriptors(image[None], **settings)[0].astype(np.float32), names


def face_frames(crops, valid, *, n_frames=8, size=32):
    """``n_frames`` face crops spread evenly over the clip, shrunk to ``size`` px square.

    Frame ``k`` is taken at the middle of the k-th of ``n_frames`` equal parts of the clip,
    ``floor((k + 1/2) t / n_frames)``; where that frame has no face, the nearest frame with
    one is taken instead (the earlier on a tie).  Crops are shrunk by pixel-area averaging
    (``cv2.INTER_AREA``), the usual choice for downsampling.

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
        Aligned grey face crops.
    valid : np.ndarray [shape=(t,), dtype=bool]
        False where no face is known.
    n_frames : int
        Crops to take (a clip shorter than that repeats frames).
    size : int
        Side of the output crops (px), at most ``s``.

    Returns
    -------
    frames : np.ndarray [shape=(n_frames, size, size), dtype=float32]
        Grey levels in [0, 1]; all NaN when no frame has a face.
    index : np.ndarray [shape=(n_frames,), dtype=int]
        The video frames taken (-1 when no frame has a face).
    """
    crops, valid = np.asarray(crops), np.asarray(valid, bool)
    if crops.ndim != 3 or crops.shape[1] != crops.shape[2] or valid.shape != crops.shape[:1] or not len(crops):
        raise FeatureError(f"need square crops (t >= 1, s, s) and a valid mask (t,), got {crops.shape} and "
                           f"{valid.shape}")
    if not (isinstance(n_frames, int) and n_frames > 0 and isinstance(size, int) and 0 < size <= crops.shape[1]):
        raise FeatureError(f"face_frames needs n_frames >= 1 and 1 <= size <= the crop side {crops.shape[1]}, "
                           f"got n_frames={n_frames!r}, size={size!r}")
    if not valid.any():
        return np.full((n_frames, size, size), np.nan, np.float32), np.full(n_frames, -1)
    wanted = ((np.arange(n_frames) + 0.5) * len(crops) / n_frames).astype(int)
    with_face = np.flatnonzero(valid)
    # Nearest frame with a face; argmin takes the first (earlier) of two equally near ones.
    index = with_face[np.abs(with_face[None, :] - wanted[:, None]).argmin(axis=1)]
    frames = np.stack([cv2.resize(crops[i], (size, size), interpolation=cv2.INTER_AREA) for i in index])
    return (frames / np.float32(255)).astype(np.float32), index


VIDEO_FAMILIES = ("hog", "hog_summary", "stip", "face_frames")
"""Video families :func:`video_features` can compute (``stip`` adds the ``stip_points`` stream)."""

DEFAULT_VIDEO_FAMILIES = ("hog", "hog_summary", "stip")
"""Video families computed unless ``VideoConfig.families`` says otherwise (``face_frames``, the
input of networks that learn from pixels, is opt-in)."""


@dataclass(frozen=True)
class VideoConfig:
    """Settings of the video features; stored with the features (``to_dict``).

    Attributes
    ----------
    crop_size : int
        Side of the aligned face crop (px) the features expect.
    hog_pixels_per_cell, hog_cells_per_block, hog_orientations : int
        See ``hog_descriptors`` (block normalisation is always L2-Hys).
    stip_scales : tuple of (sigma2, tau2)
        Spatial (px^2) and temporal (frames^2) variances of the interest point detector.
    stip_integration_factor : float
        ``s`` of ``features.stip.harris3d_response``.
    stip_k : float
        Harris constant.
    stip_threshold : float
        Absolute threshold on the Harris response.
    stip_max_points : int
        Strongest points kept per clip.
    face_frames_count, face_frames_size : int
        Crops per clip and their side (px) of the ``face_frames`` family (8 crops of 32 px by
        default: enough to follow an expression over a 3-4 s clip at a size a small CNN trains
        on within minutes on a CPU).  Part of ``to_dict`` only when ``face_frames`` is
        computed, so stores without it keep their configuration hash.
    families : tuple of str
        The families to compute, from ``VIDEO_FAMILIES`` (default ``DEFAULT_VIDEO_FAMILIES``).
    """

    crop_size: int = 64
    hog_pixels_per_cell: int = 8
    hog_cells_per_block: int = 2
    hog_orientations: int = 9
    stip_scales: tuple = DEFAULT_SCALES
    stip_integration_factor: float = 2.0
    stip_k: float = 0.005
    stip_threshold: float = DEFAULT_THRESHOLD
    stip_max_points: int = 200
    face_frames_count: int = 8
    face_frames_size: int = 32
    families: tuple = DEFAULT_VIDEO_FAMILIES

    def __post_init__(self):
        object.__setattr__(self, "families", tuple(self.families))
        unknown = sorted(set(self.families) - set(VIDEO_FAMILIES))
        if unknown or not self.families:
            raise FeatureError(f"VideoConfig.families: unknown or no family {unknown or ''}; "
                               f"known: {', '.join(VIDEO_FAMILIES)}")
        # Scales as a tuple of float pairs, so that VideoConfig(**config.to_dict()) == config.
        object.__setattr__(self, "stip_scales", tuple(tuple(map(float, scale)) for scale in self.stip_scales))
        counts = ["crop_size", "hog_pixels_per_cell", "hog_cells_per_block", "hog_orientations", "stip_max_points",
                  "face_frames_count", "face_frames_size"]
        for name in counts:
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise FeatureError(f"VideoConfig.{name} must be a positive int, got {value!r}")
        if not all(len(scale) == 2 and min(scale) > 0 for scale in self.stip_scales):
            raise FeatureError(f"VideoConfig.stip_scales must be positive (sigma2, tau2) pairs, got {self.stip_scales}")
        if not (self.stip_integration_factor > 0 and self.stip_threshold > 0 and 0 <= self.stip_k < 1 / 27):
            raise FeatureError(
                "VideoConfig needs stip_integration_factor > 0, stip_threshold > 0 and 0 <= stip_k < 1/27, got "
                f"{self.stip_integration_factor}, {self.stip_threshold}, {self.stip_k}"
            )

    def to_dict(self) -> dict:
        """The settings as a JSON-serialisable dict (scales and families as lists)."""
        settings = asdict(self)
        settings["stip_scales"] = [list(map(float, scale)) for scale in self.stip_scales]
        settings["families"] = list(self.families)
        if "face_frames" not in self.families:
            del settings["face_frames_count"], settings["face_frames_size"]
        return settings


def video_features(crops, valid, fps, config=VideoConfig()):
    """All video features of one clip.

    Parameters
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
        Aligned grey face crops, s = ``config.crop_size``.
    valid : np.ndarray [shape=(t,), dtype=bool]
        False where no face is known.  A clip with no valid frame gives NaN HOG rows and
        functionals and a STIP encoding of zeros (no points).
    fps : float > 0
        Video frame rate (Hz).
    config : VideoConfig

    Returns
    -------
    streams : dict of str -> Stream
        ``hog`` (t, 1764 by default) at ``fps``; ``stip_points`` (n_points, 54), one row
        per interest point (see ``features.stip.stip_features``); ``face_frames``
        (n_frames, size * size): the crops of `face_frames` flattened row by row (columns
        ``face_px_<row>_<col>``, grey levels in [0, 1]) at their mean rate
        ``fps * n_frames / t``; those of ``config.families``.
    functionals : dict of str -> (np.ndarray [shape=(d,)], list of str)
        ``hog`` (``frame_functionals`` of the HOG stream), ``hog_summary``
        (``summary_hog``), ``stip`` (``features.stip.stip_encoding``) and ``face_frames``
        (``face_fraction``: the fraction of the clip's frames with a face, which also marks
        the clip as having video in the store), those of ``config.families``.

    Raises
    ------
    FeatureError
        Bad crops, valid mask or frame rate, or crops of another size than the config's.
    """
    crops, valid, fps = check_face_clip(crops, valid, fps)
    if crops.shape[1] != config.crop_size:
        raise FeatureError(f"crops are {crops.shape[1]} px square but config.crop_size is {config.crop_size}")
    hog_settings = dict(
        pixels_per_cell=config.hog_pixels_per_cell,
        cells_per_block=config.hog_cells_per_block,
        orientations=config.hog_orientations,
    )
    streams, functionals = {}, {}
    if "hog" in config.families:
        streams["hog"] = hog_stream(crops, valid, fps, **hog_settings)
        functionals["hog"] = frame_functionals(streams["hog"])
    if "hog_summary" in config.families:
        functionals["hog_summary"] = summary_hog(crops, valid, **hog_settings)
    if "stip" in config.families:
        streams["stip_points"], functionals["stip"] = stip_features(
            crops, valid, fps,
            scales=config.stip_scales,
            s=config.stip_integration_factor,
            k=config.stip_k,
            threshold=config.stip_threshold,
            max_points=config.stip_max_points,
        )
    if "face_frames" in config.families:
        frames, _ = face_frames(crops, valid, n_frames=config.face_frames_count, size=config.face_frames_size)
        size = config.face_frames_size
        streams["face_frames"] = Stream(
            frames.reshape(len(frames), -1), [f"face_px_{r}_{c}" for r in range(size) for c in range(size)],
            frame_rate=fps * len(frames) / len(crops), unit="grey level in [0, 1]")
        functionals["face_frames"] = (np.array([valid.mean()], np.float32), ["face_fraction"])
    return streams, functionals
