"""Decoding: wav/flac/mp4 audio to mono at a fixed rate, video frames, clear errors."""

import subprocess

import cv2
import imageio_ffmpeg
import numpy as np
import pytest
import soundfile as sf

from extract.decode import iter_grey_frames, load_audio, video_info
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


def test_mp4_audio_via_ffmpeg(tmp_path):
    wav, mp4 = tmp_path / "tone.wav", tmp_path / "tone.mp4"
    sf.write(wav, tone(330, 48000, 1.5), 48000)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(wav), "-c:a", "aac", str(mp4)], check=True)
    y = load_audio(mp4, sr=16000)
    assert abs(len(y) / 16000 - 1.5) < 0.05
    assert abs(dominant_frequency(y, 16000) - 330) < 3


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
