"""Decode audio (wav, flac, mp4, flv) to mono float at a fixed rate, and video to grey frames.

Audio files that libsndfile reads (wav, flac, ogg) go through ``soundfile``; the audio track
of anything else (mp4, flv, ...) is decoded in this process by FFmpeg's libraries through
PyAV, as are video frames (grey, luma images, streamed one at a time, never held whole), so
nothing has to be installed by hand and no ffmpeg process is started per file.
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
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
# FFmpeg's demuxer of ISO media (mp4, mov, m4a, 3gp): the header lists every stream's codec,
# size, pixel format, rate and frame count, so probing need not decode (see _open_container).
ISO_MEDIA_FORMAT = "mov,mp4,m4a,3gp,3g2,mj2"
ISO_MEDIA_SUFFIXES = {".mp4", ".m4v", ".m4a", ".mov", ".3gp"}


def _check_file(path: Path) -> None:
    if path.is_dir():
        raise DecodeError(f"{path}: is a folder, not a file")
    if not path.is_file():
        raise DecodeError(f"{path}: file not found")
    if not os.access(path, os.R_OK):
        raise DecodeError(f"{path}: permission denied (the file is not readable)")
    if path.stat().st_size == 0:
        raise DecodeError(f"{path}: file is empty (0 bytes)")


def _open_container(path: Path) -> av.container.InputContainer:
    """``av.open(path)``, without decoding frames to probe an ISO media file.

    FFmpeg probes up to 5 MB of a file for its streams' facts (``probesize``), decoding its
    first frames to do so: 12 ms of CPU per open of a 720p RAVDESS mp4, opened twice per clip
    (audio, video), 4 % of the clip's features.  An mp4 or mov header holds those facts, so
    such a file is opened with FFmpeg's smallest probe (32 bytes: 3.6 ms), which gives the
    same facts and the same decoded frames and samples.  Any other format, or a stream whose
    facts the header lacks (MPEG-4 Part 2 video), is opened again with the full probe: a small
    probe misreads others (an flv's audio rate as 44.1 kHz, a transport stream's as 0).

    Raises the errors of ``av.open``.
    """
    if path.suffix.lower() in ISO_MEDIA_SUFFIXES:
        container = av.open(str(path), container_options={"probesize": "32"})
        if container.format.name == ISO_MEDIA_FORMAT and all(map(_probed, container.streams)):
            return container
        container.close()
    return av.open(str(path))


def _probed(stream) -> bool:
    """Whether the facts decoding needs of an audio or video ``stream`` are known."""
    context = stream.codec_context
    if stream.type == "video":
        return context is not None and context.width > 0 and context.height > 0 and context.pix_fmt is not None
    if stream.type == "audio":
        return context is not None and context.sample_rate > 0 and context.channels > 0 and context.format is not None
    return True


def load_audio(path, sr: int = 16000) -> np.ndarray:
    """Read an audio track, mix it to mono and resample it.

    Parameters
    ----------
    path : str or Path
        wav/flac/ogg (soundfile) or any container FFmpeg reads (mp4, flv, ...; its first
        audio track, decoded with PyAV).
    sr : int > 0
        Target sampling rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]
        Samples in [-1, 1] at ``sr`` Hz.

    Raises
    ------
    DecodeError
        The file is missing, empty, unreadable, damaged, has no audio track or holds no
        audio samples.
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
        y, native_sr = _container_audio(path, sr), sr
    if native_sr != sr:
        y = soxr.resample(y, native_sr, sr, quality="HQ")
    if y.size == 0:
        raise DecodeError(f"{path}: no audio samples")
    return np.ascontiguousarray(y, dtype=np.float32)


def _container_audio(path: Path, sr: int) -> np.ndarray:
    """Decode the first audio track of ``path`` with PyAV to mono float32 at ``sr`` Hz.

    Resampling is FFmpeg's own (libswresample with its default settings, as ``ffmpeg -ar sr``
    does it); a track whose format, layout or rate changes part-way is resampled piece by
    piece, as that command does.  Channels are then averaged, as for wav and flac, so that a
    stereo mp4 and a mono flac of one recording get the same level (FFmpeg's own downmix to
    float, ``-ac 1``, adds the two channels of a stereo track at 1/sqrt(2) each, 3 dB above
    their mean).  The track ends where its container says, as with ``ffmpeg``: an AAC decoder
    hands out the last frame whole, encoder padding included, up to 1023 samples past the end.
    """
    try:
        container = _open_container(path)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise DecodeError(f"{path}: cannot decode audio ({err})") from err
    blocks, decoded, setup, resampler = [], 0.0, None, None
    with container:
        if not container.streams.audio:
            raise DecodeError(f"{path}: cannot decode audio (the file has no audio track)")
        stream = container.streams.audio[0]
        if stream.codec_context is None:
            raise DecodeError(f"{path}: cannot decode audio (no decoder for its audio codec; damaged file?)")
        stream.codec_context.thread_count = 1  # workers run in parallel
        declared = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        try:
            for frame in container.decode(stream):
                if (frame.format.name, frame.layout.name, frame.sample_rate) != setup:
                    if not NATIVE_SR_RANGE[0] <= frame.sample_rate <= NATIVE_SR_RANGE[1]:
                        raise DecodeError(f"{path}: implausible sampling rate of {frame.sample_rate} Hz in its audio "
                                          "track (damaged file?)")
                    blocks += _resampled(resampler, None)  # the tail of the previous setup
                    setup = (frame.format.name, frame.layout.name, frame.sample_rate)
                    resampler = av.AudioResampler(format="fltp", rate=sr)
                blocks += _resampled(resampler, frame)
                decoded += frame.samples / frame.sample_rate
            blocks += _resampled(resampler, None)
        except (av.FFmpegError, OSError) as err:
            raise DecodeError(f"{path}: audio track damaged after {decoded:.2f} s ({err})") from err
    y = np.concatenate(blocks) if blocks else np.zeros(0, np.float32)
    return y[:round(declared * sr)] if declared else y


def _resampled(resampler, frame) -> list:
    """What ``resampler`` gives out for ``frame`` (None: flush), as arrays of mono samples
    (channels averaged)."""
    if resampler is None:
        return []
    return [out.to_ndarray().mean(axis=0, dtype=np.float32) for out in resampler.resample(frame)]


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
        container = _open_container(path)
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
    with open_video(path) as (info, _):
        return info


@contextmanager
def open_video(path) -> Iterator[tuple[VideoInfo, Iterator[np.ndarray]]]:
    """Open a video file once for its facts and its frames.

    Yields
    ------
    info : VideoInfo
        As :func:`video_info` returns it.
    frames : iterator of np.ndarray
        Its grey frames, as :func:`iter_grey_frames` yields them, while the file is open.

    Raises
    ------
    DecodeError
        As :func:`video_info` and :func:`iter_grey_frames`.
    """
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
        yield info, _grey_frames(path, stream)


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
    with _open_video(path) as stream:
        yield from _grey_frames(path, stream)


def _grey_frames(path, stream) -> Iterator[np.ndarray]:
    """The frames of the open video ``stream`` of ``path``, as :func:`iter_grey_frames` yields them."""
    count = 0
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
