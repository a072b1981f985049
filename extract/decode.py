"""Decode audio (wav, flac, mp4, flv) to mono float at a fixed rate, and video to grey frames.

Audio files that libsndfile reads (wav, flac, ogg) go through ``soundfile``; anything else
(mp4, flv, ...) through the ffmpeg binary that ``imageio-ffmpeg`` ships, so nothing has to
be installed by hand.  Video frames come from FFmpeg's libraries through PyAV, as grey
(luma) images, streamed one at a time, never held whole.
"""

import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
import imageio_ffmpeg
import numpy as np
import soundfile as sf
import soxr

from .errors import DecodeError

SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif"}
NATIVE_SR_RANGE = (1000, 768000)  # Hz; a rate outside it in a file's header is damage, not audio
# A video whose decoder stops before this fraction of the frames its header lists is damaged
# (a little short is normal: headers may count frames that edit lists drop).
MIN_DECODED_FRACTION = 0.9
# 8-bit pixel formats whose first plane is the luma (grey) image itself.
LUMA_FIRST_FORMATS = {
    "gray", "nv12", "nv21", "yuv410p", "yuv411p", "yuv420p", "yuv422p", "yuv440p", "yuv444p",
    "yuvj411p", "yuvj420p", "yuvj422p", "yuvj440p", "yuvj444p",
}


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


@contextmanager
def _open_video(path) -> Iterator[av.video.stream.VideoStream]:
    """The first video stream of ``path``, decoded on one thread (workers run in parallel)."""
    path = Path(path)
    _check_file(path)
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise DecodeError(f"{path}: cannot open video ({err})") from err
    try:
        if not container.streams.video:
            raise DecodeError(f"{path}: cannot open video (the file has no video track)")
        stream = container.streams.video[0]
        if stream.codec_context is None:
            raise DecodeError(f"{path}: cannot open video (no decoder for its video codec; damaged file?)")
        stream.thread_type, stream.codec_context.thread_count = "SLICE", 1
        yield stream
    finally:
        container.close()


def video_info(path) -> VideoInfo:
    """Frame rate, frame count and size of a video file; raises DecodeError if unreadable."""
    with _open_video(path) as stream:
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate and np.isfinite(float(rate)) and rate > 0 else 0.0
        n_frames = stream.frames
        if n_frames <= 0 and stream.duration and stream.time_base and fps > 0:  # no frame count: estimate
            n_frames = int(round(float(stream.duration * stream.time_base) * fps))
        info = VideoInfo(fps=fps, n_frames=max(int(n_frames), 0),
                         width=stream.codec_context.width, height=stream.codec_context.height)
    if info.fps <= 0 or info.width <= 0 or info.height <= 0:
        raise DecodeError(f"{path}: no readable video stream (fps={info.fps}, size={info.width}x{info.height})")
    return info


def iter_grey_frames(path) -> Iterator[np.ndarray]:
    """Yield the luma (grey) plane of each video frame, one at a time.

    For the usual 8-bit YUV and grey pixel formats the decoder's own Y' plane is handed
    out without any colour conversion (which would cost as much as a third of decoding a
    720p H.264 frame); other formats are converted to grey by FFmpeg.  Y' keeps the file's
    range (16-235 for most video); face crops are standardised later, so the range does not
    matter downstream.

    Yields
    ------
    frame : np.ndarray [shape=(height, width), dtype=uint8]
        A read-only view of the decoded frame (rows may be padded in memory: ``strides[0]``
        can exceed ``width``).

    Raises
    ------
    DecodeError
        The file cannot be opened, holds no decodable frame, or its stream is damaged
        or cut short part-way (the message says after which frame; raised once the
        frames before it have been handed out).
    """
    count = 0
    with _open_video(path) as stream:
        try:
            for frame in stream.container.decode(stream):
                if frame.format.name in LUMA_FIRST_FORMATS:
                    plane = frame.planes[0]
                    rows = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)
                    luma = rows[:, :plane.width]
                else:
                    luma = frame.to_ndarray(format="gray")
                count += 1
                yield luma
        except (av.FFmpegError, OSError) as err:
            raise DecodeError(f"{path}: video stream damaged after frame {count} ({err})") from err
        listed = stream.frames
    if count == 0:
        raise DecodeError(f"{path}: no decodable video frames")
    if count < MIN_DECODED_FRACTION * listed:
        raise DecodeError(f"{path}: video stream damaged after frame {count} (the file lists {listed} frames; cut short?)")
