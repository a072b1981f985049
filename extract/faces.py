"""Find the face in each video frame, track it, and cut aligned grey face crops.

Running a detector on every full-size frame is far too slow for a corpus, so
:func:`track_faces` runs OpenCV's Haar frontal-face cascade (Viola & Jones 2001) every
``detect_every`` frames only: on a down-scaled copy of the whole frame until a face is
found, then on a small window around the last face, shrunk so that the face is about
``track_face_px`` pixels wide and searched only at nearby sizes (a fifth of the cost on
the 720p RAVDESS clips).
Between detections the boxes are interpolated linearly, held at the ends and smoothed
with a centred moving average; a square crop with a margin is cut around each box.
Frames stream through: only a few full frames wait for the next detection, and only
crops and boxes are kept.
"""

import threading
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

import cv2
import numpy as np

from .decode import open_video
from .errors import EmofuseError

CASCADE_FILE = "haarcascade_frontalface_default.xml"
CROP_CONTRAST = 48.0  # grey levels per standard deviation of the face in normalised crops


class FaceError(EmofuseError, ValueError):
    """A frame or tracking parameter that cannot be used; the message names it."""


@dataclass
class FaceTrack:
    """The face of one clip, frame by frame.

    Attributes
    ----------
    crops : np.ndarray [shape=(t, s, s), dtype=uint8]
        Square grey face crops, illumination-normalised (see :func:`crop_face`); zeros where
        no face is known.
    boxes : np.ndarray [shape=(t, 4), dtype=float32]
        Face box ``x, y, w, h`` in original-frame pixels; NaN where unknown.
    detected : np.ndarray [shape=(t,), dtype=bool]
        True where the detector itself found the face in this frame.
    valid : np.ndarray [shape=(t,), dtype=bool]
        True where a box is known (detected, interpolated or held).
    fps : float
        Frame rate of the clip (Hz).
    frame_size : tuple of int
        ``(width, height)`` of the original frames in pixels.
    """

    crops: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray
    valid: np.ndarray
    fps: float
    frame_size: tuple


_PER_THREAD = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    """The Haar cascade, one per thread: OpenCV's detector is not safe to share across threads."""
    cascade = getattr(_PER_THREAD, "cascade", None)
    if cascade is None:
        cascade = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE_FILE)
        if cascade.empty():
            raise EmofuseError(f"cannot load the OpenCV face cascade {cv2.data.haarcascades + CASCADE_FILE}")
        _PER_THREAD.cascade = cascade
    return cascade


def _to_grey(image) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise FaceError(
            f"expected a uint8 grey (H, W) or BGR (H, W, 3) image, got {image.dtype} {image.shape}"
        )
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def detect_faces(
    image: np.ndarray,
    *,
    min_side: int | None = None,
    max_side: int | None = None,
    scale_factor: float = 1.1,
    min_neighbors: int = 5,
) -> np.ndarray:
    """Find frontal faces with OpenCV's Haar cascade.

    Parameters
    ----------
    image : np.ndarray [shape=(h, w) or (h, w, 3), dtype=uint8]
        Grey or BGR image.
    min_side, max_side : int or None
        Smallest and largest face side searched (px); by default a tenth of the image's
        shorter side and no limit.  The cascade never finds faces under 24 px.
    scale_factor : float > 1
        Step between the cascade's search scales.
    min_neighbors : int >= 0
        Overlapping raw hits a face needs to be kept; higher = fewer false alarms.

    Returns
    -------
    boxes : np.ndarray [shape=(n, 4), dtype=int]
        ``x, y, w, h`` in pixels, largest face first; ``(0, 4)`` when none is found.

    References
    ----------
    Viola, P. & Jones, M. (2001). Rapid object detection using a boosted cascade of simple
    features. CVPR.
    """
    grey = _to_grey(image)
    if min_side is None:
        min_side = max(1, round(0.1 * min(grey.shape)))
    if min_side < 1 or (max_side is not None and max_side < min_side):
        raise FaceError(f"need 1 <= min_side <= max_side, got {min_side} and {max_side}")
    found = _cascade().detectMultiScale(
        grey, scaleFactor=scale_factor, minNeighbors=min_neighbors, minSize=(min_side, min_side),
        maxSize=(max_side, max_side) if max_side is not None else (0, 0),
    )
    boxes = np.asarray(found, dtype=int).reshape(-1, 4)
    return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3], kind="stable")]


def detect_near(
    grey: np.ndarray,
    box,
    *,
    face_px: int = 32,
    search_margin: float = 0.5,
    size_tolerance: float = 1.25,
    min_neighbors: int = 3,
    detector: Callable[..., np.ndarray] = detect_faces,
) -> np.ndarray | None:
    """Find the face again close to where it was: the tracking step of :func:`track_faces`.

    The window is the previous box grown by ``search_margin`` of its side on each side
    (clipped to the frame), shrunk by an integer factor (OpenCV's fast area-averaging
    path) so that the face is about ``face_px`` wide, and searched for faces within
    ``size_tolerance`` of the previous size.

    Parameters
    ----------
    grey : np.ndarray [shape=(h, w), dtype=uint8]
        Full-size grey frame.
    box : array-like, 4 floats
        The previous face box ``x, y, w, h`` in pixels of ``grey``.
    face_px : int >= 24
        Face side in the shrunk window (the cascade's own window is 24 px).
    search_margin : float >= 0
        How far the face may have moved, as a fraction of its side.
    size_tolerance : float >= 1
        How much the face may have grown or shrunk (factor).
    min_neighbors : int >= 0
        Raw hits a face needs (see :func:`detect_faces`); fewer than for a whole frame,
        since the window and sizes searched already exclude most false alarms.
    detector : callable
        ``detector(grey, min_side=..., max_side=..., min_neighbors=...) -> (n, 4)`` boxes,
        largest first.

    Returns
    -------
    box : np.ndarray [shape=(4,), dtype=float64] or None
        The face in pixels of ``grey``; None when it is not in the window.
    """
    x, y, w, h = map(float, box)
    side, (height, width) = max(w, h), grey.shape[:2]
    shrink = max(1, int(side / face_px))
    x0, y0 = max(0, int(x - search_margin * side)), max(0, int(y - search_margin * side))
    x1 = min(width, int(np.ceil(x + w + search_margin * side)))
    y1 = min(height, int(np.ceil(y + h + search_margin * side)))
    n_x, n_y = (x1 - x0) // shrink, (y1 - y0) // shrink
    if min(n_x, n_y) < 1:
        return None
    window = grey[y0:y0 + n_y * shrink, x0:x0 + n_x * shrink]
    if shrink > 1:
        window = cv2.resize(window, (n_x, n_y), interpolation=cv2.INTER_AREA)
    expected = side / shrink
    found = np.asarray(detector(
        window, min_side=max(1, int(expected / size_tolerance)), max_side=int(np.ceil(expected * size_tolerance)),
        min_neighbors=min_neighbors,
    ), dtype=np.float64).reshape(-1, 4)
    return found[0] * shrink + [x0, y0, 0, 0] if len(found) else None


def interpolate_boxes(
    frame_index: np.ndarray, anchor_index: np.ndarray, anchor_boxes: np.ndarray
) -> np.ndarray:
    """Boxes at ``frame_index``: linear between detections, held beyond the first and last.

    Parameters
    ----------
    frame_index : np.ndarray [shape=(t,)]
        Frames to give a box.
    anchor_index : np.ndarray [shape=(k,)], increasing
        Frames where the face was detected.
    anchor_boxes : np.ndarray [shape=(k, 4)]
        The detected ``x, y, w, h`` boxes.

    Returns
    -------
    boxes : np.ndarray [shape=(t, 4), dtype=float64]
        All NaN when there is no anchor.
    """
    frame_index = np.asarray(frame_index, dtype=np.float64)
    anchor_boxes = np.asarray(anchor_boxes, dtype=np.float64).reshape(-1, 4)
    if len(anchor_boxes) == 0:
        return np.full((len(frame_index), 4), np.nan)
    return np.stack([np.interp(frame_index, anchor_index, anchor_boxes[:, k]) for k in range(4)], axis=1)


def crop_face(grey: np.ndarray, box, *, crop_size: int = 64, margin: float = 0.1) -> np.ndarray:
    """Cut a square, illumination-normalised face crop.

    The square is centred on the box, with side ``max(w, h) * (1 + 2 * margin)``; parts
    outside the frame repeat the edge pixels.  It is halved by Gaussian pyramid steps
    while it is at least twice the crop, then resized with area averaging (anti-aliased
    like area averaging alone, at a third of its cost on 720p faces), then
    normalised for illumination: the grey values are standardised by the mean and standard
    deviation of the face box itself (the crop without its margin) and mapped to
    ``128 + 48 * z``, which removes global brightness and contrast changes without
    amplifying a flat background (as histogram equalisation would).

    Parameters
    ----------
    grey : np.ndarray [shape=(h, w), dtype=uint8]
        Grey frame.
    box : array-like, 4 floats
        ``x, y, w, h`` in pixels of ``grey``.
    crop_size : int > 0
        Side of the crop in pixels.
    margin : float >= 0
        Margin on each side, as a fraction of the box side.

    Returns
    -------
    crop : np.ndarray [shape=(crop_size, crop_size), dtype=uint8]
    """
    x, y, w, h = map(float, box)
    side = max(1, int(round(max(w, h) * (1 + 2 * margin))))
    top, left = int(round(y + (h - side) / 2)), int(round(x + (w - side) / 2))
    if top >= 0 and left >= 0 and top + side <= grey.shape[0] and left + side <= grey.shape[1]:
        square = grey[top:top + side, left:left + side]  # a view: no copy of a 720p face
    else:  # repeat the edge pixels
        rows = np.clip(np.arange(top, top + side), 0, grey.shape[0] - 1)
        square = grey[np.ix_(rows, np.clip(np.arange(left, left + side), 0, grey.shape[1] - 1))]
    while len(square) >= 2 * crop_size:
        square = cv2.pyrDown(square)
    side = len(square)
    interpolation = cv2.INTER_AREA if side >= crop_size else cv2.INTER_LINEAR
    crop = cv2.resize(square, (crop_size, crop_size), interpolation=interpolation).astype(np.float32)
    edge = int(round(crop_size * margin / (1 + 2 * margin)))
    face = crop[edge:crop_size - edge, edge:crop_size - edge]
    z = (crop - face.mean()) / max(float(face.std()), 1.0)
    return np.clip(128 + CROP_CONTRAST * z, 0, 255).round().astype(np.uint8)


def track_faces(
    frames: Iterable[np.ndarray],
    fps: float,
    *,
    detect_every: int = 5,
    detect_width: int = 160,
    track_face_px: int | None = 32,
    crop_size: int = 64,
    smooth: int = 5,
    margin: float = 0.1,
    max_wait: float = 1.0,
    detector: Callable[..., np.ndarray] = detect_faces,
) -> FaceTrack:
    """Detect, track and crop the face of a clip while its frames stream through.

    Parameters
    ----------
    frames : iterable of np.ndarray [shape=(h, w, 3) or (h, w), dtype=uint8]
        Grey (or BGR) frames of one size, e.g. :func:`extract.decode.iter_grey_frames`.
    fps : float > 0
        Frame rate (Hz).
    detect_every : int >= 1
        Run the detector on every ``detect_every``-th frame, on the last frame, and on
        every frame after a failed detection until the face is found again.
    detect_width : int
        Frames wider than this are down-scaled to this width to search the whole frame
        (until the face is found, and whenever it is lost).  160 finds the face in every
        frame of the real 720p RAVDESS clips (face about a third of the frame wide); lower
        it only for close-ups.
    track_face_px : int >= 24 or None
        Once found, the face is searched near its last box, shrunk to about this width
        (see :func:`detect_near`); None searches the whole down-scaled frame every time.
    crop_size : int > 0
        Side of the face crops in pixels.
    smooth : int >= 1, odd
        Width in frames of the centred moving average over the boxes; the window shrinks
        symmetrically at the clip ends, so linear motion passes unchanged.
    margin : float >= 0
        Crop margin on each side of the box, as a fraction of the box side.
    max_wait : float > 0
        Longest time (s) a frame waits for a later detection; after that its box is held
        from the earlier detections (or it stays unknown).  Bounds the frames in memory.
    detector : callable
        ``detector(grey, **options) -> (n, 4)`` boxes, largest first, where the options
        are those :func:`detect_near` passes (none for a whole-frame search); default
        :func:`detect_faces`.

    Returns
    -------
    track : FaceTrack
        A clip where no face is ever found gives ``valid.any() == False``.
    """
    if not (np.isfinite(fps) and fps > 0):
        raise FaceError(f"fps must be a positive number, got {fps}")
    if (detect_every < 1 or detect_width < 24 or crop_size < 1 or margin < 0 or max_wait <= 0
            or (track_face_px is not None and track_face_px < 24)):
        raise FaceError(
            "need detect_every >= 1, detect_width >= 24, track_face_px >= 24 or None, crop_size >= 1, "
            f"margin >= 0, max_wait > 0; got {detect_every}, {detect_width}, {track_face_px}, {crop_size}, "
            f"{margin}, {max_wait}"
        )
    if smooth < 1 or smooth % 2 == 0:
        raise FaceError(f"smooth must be a positive odd number of frames, got {smooth}")
    half = smooth // 2
    max_pending = max(half + 1, int(round(max_wait * fps)))
    anchor_index, anchor_boxes = [], []
    detected, crops, boxes = [], [], []
    pending = deque()  # (index, grey) of frames whose smoothing window is not yet final
    frame_size, scale, n_frames = None, 1.0, 0

    acquired = None  # the face as found by the latest whole-frame search

    def locate(grey, searching):
        nonlocal acquired
        if acquired is not None and not searching:
            # Near the latest box, at the size of the acquired face: every tracking step
            # measures the face at the same scale, so box sizes cannot drift.
            (x, y, w, h), (_, _, side_x, side_y) = anchor_boxes[-1], acquired
            near = (x + (w - side_x) / 2, y + (h - side_y) / 2, side_x, side_y)
            return detect_near(grey, near, face_px=track_face_px, detector=detector)
        small = grey
        if scale < 1.0:
            small = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        found = np.asarray(detector(small), dtype=np.float64).reshape(-1, 4)
        if not len(found) or track_face_px is None:
            return found[0] / scale if len(found) else None
        # Measure the found face as the tracking steps will, so that all boxes share one bias.
        acquired = detect_near(grey, found[0] / scale, face_px=track_face_px, detector=detector)
        if acquired is None:
            acquired = found[0] / scale
        return acquired

    def emit(index, grey, last_index=None):
        # Centred moving average of the interpolated boxes, window shrunk symmetrically
        # at the clip's start and, once the stream has ended, at its end.
        reach = min(half, index) if last_index is None else min(half, index, last_index - index)
        window = np.arange(index - reach, index + reach + 1)
        box = interpolate_boxes(window, anchor_index, anchor_boxes).mean(axis=0)
        boxes.append(box)
        known = np.isfinite(box).all()
        crops.append(crop_face(grey, box, crop_size=crop_size, margin=margin) if known
                     else np.zeros((crop_size, crop_size), np.uint8))

    searching = True  # detect on this frame: scheduled, or the face is lost
    for index, frame in enumerate(frames):
        grey = _to_grey(frame)
        if frame_size is None:
            frame_size = (grey.shape[1], grey.shape[0])
            scale = min(1.0, detect_width / frame_size[0])
        elif (grey.shape[1], grey.shape[0]) != frame_size:
            raise FaceError(
                f"frame {index} is {grey.shape[1]}x{grey.shape[0]}, expected {frame_size[0]}x{frame_size[1]}"
            )
        tried = searching or index % detect_every == 0
        box = locate(grey, searching) if tried else None
        if box is not None:
            anchor_index.append(index)
            anchor_boxes.append(box)
        searching = tried and box is None
        detected.append(box is not None)
        pending.append((index, grey))
        n_frames = index + 1
        while pending and (
            (anchor_index and anchor_index[-1] >= pending[0][0] + half) or len(pending) > max_pending
        ):
            emit(*pending.popleft())

    if pending and not tried:  # one more detection on the last frame, so the end is not held
        box = locate(pending[-1][1], searching)
        if box is not None:
            anchor_index.append(n_frames - 1)
            anchor_boxes.append(box)
            detected[-1] = True
    while pending:
        emit(*pending.popleft(), last_index=n_frames - 1)

    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    return FaceTrack(
        crops=np.asarray(crops, dtype=np.uint8).reshape(-1, crop_size, crop_size),
        boxes=boxes,
        detected=np.asarray(detected, dtype=bool),
        valid=np.isfinite(boxes).all(axis=1),
        fps=float(fps),
        frame_size=frame_size or (0, 0),
    )


def track_video(path, **kwargs) -> FaceTrack:
    """Decode a video file and track its face: :func:`track_faces` over its frames.

    Parameters
    ----------
    path : str or Path
        Video file.
    **kwargs
        Options of :func:`track_faces`.

    Returns
    -------
    track : FaceTrack

    Raises
    ------
    DecodeError
        The file cannot be decoded.
    """
    with open_video(path) as (info, frames):  # opened once: FFmpeg probes a file's streams on each opening
        return track_faces(frames, info.fps, **kwargs)
