"""Decoding: wav/flac/mp4 audio to mono at a fixed rate, video frames, clear errors."""

import subprocess

import av
import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from extract.decode import _open_container, iter_grey_frames, load_audio, open_video, video_info
from extract.faces import track_video
from extract.errors import DecodeError


def tone(freq, sr, seconds, channels=1):
    t = np.arange(int(sr * seconds)) / sr
    y = 0.5 * np.sin(2 * np.pi * freq * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def dominant_frequency(y, sr):
    spectrum = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return np.fft.rfftfreq(len(y), 1 / sr)[spectrum.argmax()]


@pytest.mark.parametrize("sr_in, subtype, channels", [(44100, "PCM_16", 2), (48000, "PCM_24", 1), (8000, "FLOAT", 1)])
def test_wav_is_mixed_and_resampled(tmp_path, sr_in, subtype, channels):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(440, sr_in, 1.0, channels), sr_in, subtype=subtype)
    y = load_audio(path, sr=16000)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) <= 2
    assert abs(dominant_frequency(y, 16000) - 440) < 2
    assert 0.45 < np.abs(y).max() < 0.55


def write_mp4(path, *, audio=None, sr=48000, channels=2, video_frames=0, video_codec="mpeg4"):
    """An mp4 written in-process: ``audio`` (mono samples, copied to each of ``channels``) as AAC
    at ``sr`` Hz, and ``video_frames`` 64x48 frames at 15 fps (MPEG-4 Part 2, or ``video_codec``)."""
    with av.open(str(path), "w") as out:  # every stream is added before the first packet is written
        video = out.add_stream(video_codec, rate=15) if video_frames else None
        track = out.add_stream("aac", rate=sr, layout="stereo" if channels == 2 else "mono") if audio is not None else None
        if video:
            video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
            for i in range(video_frames):
                out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 10 * i, np.uint8), format="rgb24")))
            out.mux(video.encode(None))
        if track:
            planes = np.tile(np.asarray(audio, np.float32), (channels, 1))
            for start in range(0, planes.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planes[:, start:start + 1024]), format="fltp",
                                                   layout=track.layout.name)
                frame.sample_rate, frame.pts = sr, start
                out.mux(track.encode(frame))
            out.mux(track.encode(None))
    return path


@pytest.mark.parametrize("native_sr, channels, sr", [(48000, 2, 16000), (44100, 1, 16000), (22050, 2, 8000)])
def test_mp4_audio_decoded_in_process(tmp_path, monkeypatch, native_sr, channels, sr):
    """The AAC track of an audio-visual mp4 comes back mixed, resampled, as long as the tone
    (not the AAC frames' padded length) and without starting any process."""
    path = write_mp4(tmp_path / "tone.mp4", audio=tone(330, native_sr, 1.5), sr=native_sr, channels=channels,
                     video_frames=20)

    def no_process(*args, **kwargs):
        raise AssertionError("load_audio started a process")

    monkeypatch.setattr(subprocess, "Popen", no_process)
    y = load_audio(path, sr=sr)
    assert y.dtype == np.float32 and y.ndim == 1
    assert len(y) == round(1.5 * sr)
    assert abs(dominant_frequency(y, sr) - 330) < 2
    middle = y[len(y) // 4: 3 * len(y) // 4]
    assert np.sqrt(np.mean(middle ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.05)


def test_mp4_audio_matches_the_ffmpeg_command_line(tmp_path):
    wav, mp4 = tmp_path / "tone.wav", tmp_path / "tone.mp4"
    sf.write(wav, tone(330, 44100, 1.3, channels=2), 44100)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac", str(mp4)], check=True)
    command = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(mp4), "-ar", "16000",
                              "-f", "f32le", "-"], capture_output=True, check=True)
    expected = np.frombuffer(command.stdout, np.float32).reshape(-1, 2).mean(axis=1)  # channels averaged
    y = load_audio(mp4, sr=16000)
    assert len(y) == len(expected)
    # The same decoder and resampler; only the last few samples differ (ffmpeg's resampler is
    # flushed at the track's end, ours after the decoded padding that is then cut off).
    np.testing.assert_allclose(y[:-16], expected[:-16], atol=1e-4)
    np.testing.assert_allclose(y, expected, atol=1e-2)


def test_mp4_without_audio_track(tmp_path):
    path = write_mp4(tmp_path / "silent film.mp4", video_frames=5)
    assert len(list(iter_grey_frames(path))) == 5
    with pytest.raises(DecodeError, match=r"silent film.mp4: cannot decode audio \(the file has no audio track\)"):
        load_audio(path)


def stream_facts(container) -> list:
    """What decoding reads from each stream of an open container."""
    facts = []
    for stream in container.streams:
        context = stream.codec_context
        facts.append((stream.type, context.width, context.height, context.pix_fmt, stream.average_rate, stream.frames)
                     if stream.type == "video" else
                     (stream.type, context.sample_rate, context.channels, context.format.name, stream.duration))
    return facts


def full_probe(path):
    with av.open(str(path)) as container:
        return container.format.name, stream_facts(container)


@pytest.mark.parametrize("video_codec, probes", [
    ("libx264", [{"container_options": {"probesize": "32"}}]),
    # the decoder of MPEG-4 Part 2 learns the frame size from the first frame, not the header
    ("mpeg4", [{"container_options": {"probesize": "32"}}, {}]),
])
def test_iso_media_are_opened_without_decoding_to_probe(tmp_path, monkeypatch, video_codec, probes):
    """An H.264 mp4 is opened once, with FFmpeg's smallest probe; one whose header lacks a
    fact is opened again with the full probe; both give the facts, frames and samples of a
    full probe."""
    path = write_mp4(tmp_path / "clip.mp4", audio=tone(330, 48000, 1.0), video_frames=12, video_codec=video_codec)
    expected = full_probe(path)
    frames, samples = [f.copy() for f in iter_grey_frames(path)], load_audio(path)
    calls, real_open = [], av.open
    monkeypatch.setattr(av, "open", lambda file, *a, **kw: calls.append(kw) or real_open(file, *a, **kw))
    with _open_container(path) as container:
        assert (container.format.name, stream_facts(container)) == expected
    assert calls == probes
    for frame, before in zip(iter_grey_frames(path), frames, strict=True):
        np.testing.assert_array_equal(frame, before)
    np.testing.assert_array_equal(load_audio(path), samples)


@pytest.mark.parametrize("muxer, codecs", [("flv", ["-c:v", "flv1", "-c:a", "aac"]), ("mpegts", ["-c", "copy"])])
def test_other_formats_named_mp4_get_the_full_probe(tmp_path, muxer, codecs):
    """A small probe misreads an flv's audio rate (its header's 44.1 kHz) and finds no rate at
    all in a transport stream: such files, even named .mp4, are probed in full."""
    source = write_mp4(tmp_path / "source.mp4", audio=tone(330, 48000, 1.0), video_frames=12)
    path = tmp_path / f"{muxer}.mp4"
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(source), *codecs, "-f", muxer,
                    str(path)], check=True)
    name, facts = full_probe(path)
    assert name == muxer and ("audio", 48000) in [f[:2] for f in facts]
    with _open_container(path) as container:
        assert (container.format.name, stream_facts(container)) == (name, facts)


def test_video_frames_and_info(tmp_path):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (64, 48))
    for i in range(10):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    info = video_info(path)
    assert (info.width, info.height, info.n_frames) == (64, 48, 10) and info.fps == pytest.approx(15.0)
    frames = list(iter_grey_frames(path))
    assert len(frames) == 10 and frames[0].shape == (48, 64) and frames[0].dtype == np.uint8
    assert np.mean(frames[9]) > np.mean(frames[0]) + 100


def test_video_cut_short_names_the_frame(tmp_path):
    # moov atom first (as web-ready mp4s are), then half the frames: the decoder runs out
    # part-way, and the error says where instead of handing out a shorter clip.
    whole, cut = tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    writer = cv2.VideoWriter(str(tmp_path / "raw.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (64, 48))
    for i in range(30):
        writer.write(np.random.default_rng(i).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    writer.release()
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(tmp_path / "raw.mp4"), "-c", "copy",
                    "-movflags", "+faststart", str(whole)], check=True)
    assert len(list(iter_grey_frames(whole))) == 30
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size * 2 // 3])
    assert video_info(cut).n_frames == 30  # the header still promises every frame
    with pytest.raises(DecodeError, match=r"cut.mp4: video stream damaged after frame \d+"):
        list(iter_grey_frames(cut))


@pytest.mark.parametrize("content", [b"", b"this is not audio at all"])
def test_bad_audio_names_the_file(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(DecodeError, match="broken.wav"):
        load_audio(path)


def test_bad_video_and_missing_track(tmp_path):
    path = tmp_path / "broken.mp4"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(DecodeError, match="broken.mp4"):
        video_info(path)
    with pytest.raises(DecodeError, match="broken.mp4"):
        load_audio(path)
    with pytest.raises(DecodeError, match="not found"):
        load_audio(tmp_path / "absent.wav")


def test_real_flac(real_speech):
    path = next(real_speech.glob("Actor_01/*.flac"))
    native, sr = sf.read(path)
    assert sr == 48000
    y = load_audio(path, sr=16000)
    assert abs(len(y) - len(native) / 3) <= 2


def test_real_video(real_video):
    path = real_video / "02-01-03-01-01-02-05.mp4"
    info = video_info(path)
    assert (info.width, info.height) == (1280, 720) and info.fps == pytest.approx(29.97, abs=0.01)
    assert 2.5 < info.duration < 4.5
    # The luma plane is OpenCV's grey conversion of the decoded colour frame, up to the
    # video range: grey = (Y - 16) * 255 / 219.
    capture = cv2.VideoCapture(str(path))
    colour = [capture.read()[1] for _ in range(3)]
    for luma, bgr in zip(iter_grey_frames(path), colour):
        assert luma.shape == (720, 1280)
        expected = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(float)
        assert np.median(np.abs((luma.astype(float) - 16) * 255 / 219 - expected)) <= 2


def test_real_video_probed_from_its_header(real_video):
    for path in sorted(real_video.glob("*.mp4")):
        with _open_container(path) as container:
            assert (container.format.name, stream_facts(container)) == full_probe(path)


def test_a_tracked_video_is_opened_once(tmp_path, monkeypatch):
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    expected_info, expected_frames = video_info(path), [f.copy() for f in iter_grey_frames(path)]
    opened, real_open = [], av.open
    monkeypatch.setattr(av, "open", lambda file, *args, **kwargs: opened.append(file) or real_open(file, *args, **kwargs))
    with open_video(path) as (info, frames):
        assert info == expected_info
        for frame, expected in zip(frames, expected_frames, strict=True):
            np.testing.assert_array_equal(frame, expected)
    track = track_video(path, crop_size=16)
    assert len(track.valid) == 6 and track.fps == pytest.approx(15.0)
    assert opened == [str(path)] * 2  # once for open_video, once for track_video
