"""Decode audio (wav, flac, mp4, flv) to mono float at a fixed rate, and video to BGR frames.

Audio files that libsndfile reads (wav, flac, ogg) go through ``soundfile``; anything else
(mp4, flv, ...) through the ffmpeg binary that ``imageio-ffmpeg`` ships, so nothing has to
be installed by hand.  Video frames come from OpenCV and are streamed, never held whole.
"""

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import imageio_ffmpeg
import numpy as np
import soundfile as sf
import soxr

from .errors import DecodeError

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
NATIVE_SR_RANGE = (1000, 768000)  # Hz; a rate outside it in a file's header is damage, not audio


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DecodeError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise DecodeError(f"{path}: file not found")
    if not os.access(path, os.R_OK):
        raise DecodeError(f"{path}: permission denied (the file is not readable)")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: file is empty (0 bytes)")


def load_audio(path, sr: int = 16000) -> np.ndarray:
    """Read an audio track, mix it to mono and resample it.

    Parameters
    ----------
    path : str or Path
        wav/flac/ogg (soundfile) or any container ffmpeg reads (mp4, flv, ...).
    sr : int > 0
        Target sampling rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Samples in [-1, 1] at ``sr`` Hz.

    Raises
    ------
    DecodeError
        The file is missing, empty, unreadable or holds no audio samples.
    """
    path = Path(path)
    if sr <= 0:
        raise ValueError(f"sr must be positive, got {sr}")
    _check_file(path)
    if path.suffix.lower() in SOUNDFILE_SUFFIXES:
        try:
            y, native_sr = sf.read(str(path), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError) as err:
            raise DecodeError(f"{path}: cannot decode audio ({err})") from err
        y = y.mean(axis=1)
        if not NATIVE_SR_RANGE[0] <= native_sr <= NATIVE_SR_RANGE[1]:  # resampling would blow it up or empty it
            raise DecodeError(f"{path}: implausible sampling rate of {native_sr} Hz in its header (damaged file?)")
    else:
        y, native_sr = _ffmpeg_audio(path, sr), sr
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    if y.size == 0:
        raise DecodeError(f"{path}: no audio samples")
    return np.ascontiguousarray(y, dtype=np.float32)


def _ffmpeg_audio(path: Path, sr: int) -> np.ndarray:
    """Decode the first audio stream of ``path`` with ffmpeg to mono float32 at ``sr`` Hz."""
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-ac", "1", "-ar", str(sr), "-f", "f32le", "-",
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as err:
        raise DecodeError(f"{path}: ffmpeg timed out decoding audio") from err
    if proc.returncode != 0:
        message = proc.stderr.decode(errors="replace").strip().splitlines()
        reason = message[-1] if message else f"ffmpeg exit status {proc.returncode}"
        if any("matches no streams" in line for line in message):  # not always the last line
            reason = "the file has no audio track"
        raise DecodeError(f"{path}: cannot decode audio ({reason})")
    return np.frombuffer(proc.stdout, dtype=np.float32)


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts of a video file: frame rate (Hz), frame count (as the container says; 0 if it
    says nothing sensible) and size (px)."""

    fps: float
    n_frames: int
    width: int
    height: int

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.n_frames / self.fps


def _open_video(path) -> cv2.VideoCapture:
    path = Path(path)
    _check_file(path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise DecodeError(f"{path}: cannot open video")
    return capture


def video_info(path) -> VideoInfo:
    """Frame rate, frame count and size of a video file; raises DecodeError if unreadable."""
    capture = _open_video(path)
    try:
        fps = capture.get(cv2.CAP_PROP_FPS)
        info = VideoInfo(
            fps=float(fps) if fps and np.isfinite(fps) and fps > 0 else 0.0,
            n_frames=max(int(capture.get(cv2.CAP_PROP_FRAME_COUNT)), 0),  # a damaged header can say < 0
            width=int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            height=int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)),
        )
    finally:
        capture.release()
    if info.fps <= 0 or info.width <= 0 or info.height <= 0:
        raise DecodeError(f"{path}: no readable video stream (fps={info.fps}, size={info.width}x{info.height})")
    return info


def iter_frames(path) -> Iterator[np.ndarray]:
    """Yield the frames of a video one at a time.

    Yields
    ------
    frame : np.ndarray [shape=(height, width, 3), dtype=uint8]
        BGR frame, as OpenCV decodes it.

    Raises
    ------
    DecodeError
        The file cannot be opened or holds no decodable frame.
    """
    capture = _open_video(path)
    try:
        count = 0
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            count += 1
            yield frame
    finally:
        capture.release()
    if count == 0:
        raise DecodeError(f"{path}: no decodable video frames")
