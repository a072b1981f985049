"""The synthetic RAVDESS-shaped corpus: layout, determinism, resuming, and that the voice
carries arousal (pitch, loudness), gender (pitch) and the face valence."""

import io
import json
import shutil

import cv2
import librosa
import numpy as np
import pytest
import soundfile as sf

from extract.corpora import parse_ravdess_name
from extract.errors import CorpusError, EmofuseError
from extract.synthetic import generate_corpus
from extract.synthetic.corpus import Take, actor_takes, frame_means, synthesize_take
from extract.synthetic.voice import STATEMENTS, sample_voice, synthesize_speech

SR, FPS, WIDTH, HEIGHT = 16000, 15.0, 160, 120
HIGH_AROUSAL, LOW_AROUSAL = ("05", "06", "03", "08"), ("02", "04")  # angry fearful happy surprised / calm sad


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One actor (60 takes) written by two worker processes."""
    return generate_corpus(tmp_path_factory.mktemp("synthetic"), actors=1, seed=0, n_jobs=2, progress=False)


def _wavs(corpus, emotions):
    return sorted(p for e in emotions for p in (corpus / "Actor_01").glob(f"03-01-{e}-*.wav"))


def _f0_and_level(clip):
    """Median YIN F0 (Hz) and mean RMS (dB) over the loud frames of a clip (signal or wav path)."""
    y = clip if isinstance(clip, np.ndarray) else sf.read(clip, dtype="float32")[0]
    f0 = librosa.yin(y, fmin=60, fmax=500, sr=SR, frame_length=1024, hop_length=256)
    rms = librosa.feature.rms(y=y, frame_length=1024, hop_length=256)[0]
    loud = rms > 0.1 * rms.max()
    return np.median(f0[loud]), 20 * np.log10(rms[loud].mean())


def _wav_bytes(y):
    buffer = io.BytesIO()
    sf.write(buffer, y, SR, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


def test_files_follow_ravdess_layout_and_names(corpus):
    files = sorted(p.name for p in (corpus / "Actor_01").iterdir())
    assert [p.name for p in corpus.iterdir() if p.name != ".complete"] == ["Actor_01"]
    assert len(files) == 120 and not any(name.startswith(".") for name in files)
    fields = [parse_ravdess_name(name[:-4]) for name in files]
    assert {(f["modality"], name[-4:]) for f, name in zip(fields, files)} == {("03", ".wav"), ("02", ".mp4")}
    assert all(f["vocal_channel"] == "speech" and f["actor"] == "01" for f in fields)
    # 8 emotions x 2 intensities, neutral normal only -> 15 pairs, each 2 statements x 2 repetitions.
    pairs = [(f["emotion_code"], f["intensity"]) for f in fields if f["modality"] == "03"]
    assert len(set(pairs)) == 15 and ("01", "strong") not in pairs
    assert all(pairs.count(pair) == 4 for pair in set(pairs))
    assert {f["clip_id"] for f in fields if f["modality"] == "02"} == {f["clip_id"] for f in fields if f["modality"] == "03"}
    complete = json.loads((corpus / ".complete").read_text())
    assert (complete["seed"], complete["actors"], complete["sr"], complete["fps"]) == (0, 1, SR, FPS)


def test_audio_and_video_are_readable_and_equally_long(corpus):
    for wav in sorted((corpus / "Actor_01").glob("*.wav"))[::6]:
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype) == (SR, 1, "PCM_16")
        assert 3.15 <= info.duration <= 3.85
        video = cv2.VideoCapture(str(wav.with_name("02" + wav.name[2:-4] + ".mp4")))
        n_frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        size = (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        decoded = sum(1 for _ in iter(lambda: video.read()[0], False))
        assert size == (WIDTH, HEIGHT) and video.get(cv2.CAP_PROP_FPS) == FPS
        assert decoded == n_frames
        assert abs(n_frames / FPS - info.frames / SR) <= 1 / SR


def test_same_seed_same_bytes_whatever_the_process_or_order(corpus):
    # Takes synthesised here, in another order than the workers used, match the files byte for byte.
    for take in actor_takes(1)[::-17]:
        y, _ = synthesize_take(take, seed=0, video=False)
        assert _wav_bytes(y) == (corpus / "Actor_01" / take.filename("03")).read_bytes()
    take = Take("05", "02", "01", "02", 1)
    other, _ = synthesize_take(take, seed=1, video=False)
    assert _wav_bytes(other) != (corpus / "Actor_01" / take.filename("03")).read_bytes()


def test_interrupted_corpus_is_completed_without_redoing_files(corpus, tmp_path):
    folder = tmp_path / "corpus"
    shutil.copytree(corpus, folder)
    (folder / ".complete").rename(folder / ".generating")  # as if the run had stopped
    actor = folder / "Actor_01"
    lost = [actor / "03-01-05-02-01-02-01.wav", actor / "02-01-05-02-01-02-01.mp4", actor / "03-01-04-01-02-01-01.wav"]
    original = {p: p.read_bytes() for p in lost if p.suffix == ".wav"}
    for p in lost:
        p.unlink()
    kept = {p: p.stat().st_mtime_ns for p in actor.iterdir()}

    generate_corpus(folder, actors=1, seed=0, n_jobs=1, progress=False)
    assert all(p.is_file() for p in lost)
    assert all(p.read_bytes() == data for p, data in original.items())
    assert all(p.stat().st_mtime_ns == mtime for p, mtime in kept.items())
    assert sorted(p.name for p in folder.iterdir()) == [".complete", "Actor_01"]

    # A finished corpus with the same parameters is left alone; other parameters are refused.
    stamp = (folder / ".complete").stat().st_mtime_ns
    generate_corpus(folder, actors=1, seed=0, progress=False)
    assert (folder / ".complete").stat().st_mtime_ns == stamp
    with pytest.raises(CorpusError, match="other parameters"):
        generate_corpus(folder, actors=1, seed=1, progress=False)


def test_refuses_foreign_folders_and_bad_arguments(tmp_path):
    (tmp_path / "notes.txt").write_text("not a corpus")
    with pytest.raises(CorpusError, match="not empty"):
        generate_corpus(tmp_path, actors=1, progress=False)
    for bad in ({"actors": 0}, {"actors": 100}, {"seed": -1}, {"video_size": "huge"}, {"n_jobs": 0}):
        with pytest.raises(CorpusError):
            generate_corpus(tmp_path / "new", progress=False, **bad)
    assert not (tmp_path / "new").exists()


def test_pitch_and_loudness_follow_arousal(corpus):
    angry = np.array([_f0_and_level(p) for p in _wavs(corpus, ["05"])])
    sad = np.array([_f0_and_level(p) for p in _wavs(corpus, ["04"])])
    high = np.array([_f0_and_level(p) for p in _wavs(corpus, HIGH_AROUSAL)])
    low = np.array([_f0_and_level(p) for p in _wavs(corpus, LOW_AROUSAL)])
    assert len(angry) == len(sad) == 8 and len(high) == 32 and len(low) == 16
    assert 12 * np.log2(angry[:, 0].mean() / sad[:, 0].mean()) > 2.0  # semitones
    assert 12 * np.log2(high[:, 0].mean() / low[:, 0].mean()) > 2.0
    assert high[:, 1].mean() - low[:, 1].mean() > 3.0  # dB
    # Actor 01 is male: his speech sits in a male pitch range.
    assert 80 < np.median(low[:, 0]) < 180


def test_female_actor_speaks_higher_than_male(corpus):
    takes = [Take(emotion, "01", "01", "01", actor=2) for emotion in ("01", "02", "05")]
    female = [_f0_and_level(synthesize_take(take, seed=0, video=False)[0])[0] for take in takes]
    male = [_f0_and_level(p)[0] for p in _wavs(corpus, ["01-01-01-01", "02-01-01-01", "05-01-01-01"])]
    assert len(male) == 3
    assert np.mean(female) > 1.3 * np.mean(male)


def test_speech_is_seven_syllables_inside_silence():
    voice = sample_voice(np.random.default_rng(4), "female")
    for statement in STATEMENTS:
        y, envelope = synthesize_speech(voice, "neutral", 1.0, statement, np.random.default_rng(statement), sr=SR,
                                        duration=3.4)
        assert y.shape == envelope.shape == (round(3.4 * SR),) and y.dtype == np.float32
        assert envelope.min() == 0 and envelope.max() <= 1
        onsets = np.flatnonzero((envelope[1:] > 0) & (envelope[:-1] == 0))
        assert len(onsets) == 7
        # Lead-in and trailing silence: only the room's noise floor, 20 dB or more below the speech.
        lead, trail = y[: onsets[0] - SR // 5], y[np.flatnonzero(envelope)[-1] + SR // 5:]
        speech_rms = np.sqrt(np.mean(y[envelope > 0] ** 2))
        for quiet in (lead, trail):
            assert len(quiet) > SR // 20 and 1e-4 < np.sqrt(np.mean(quiet**2)) < 0.1 * speech_rms


def test_speech_at_ravdess_rate_and_bad_arguments():
    voice = sample_voice(np.random.default_rng(0), "male")
    y, _ = synthesize_speech(voice, "angry", 2.0, 1, np.random.default_rng(0), sr=48000, duration=3.5)
    assert y.shape == (168000,) and np.abs(y).max() <= 1
    for emotion, intensity, statement, duration in (("bored", 1.0, 1, 3.4), ("sad", 0.0, 1, 3.4),
                                                    ("sad", 1.0, 3, 3.4), ("sad", 1.0, 1, 1.0)):
        with pytest.raises(EmofuseError):
            synthesize_speech(voice, emotion, intensity, statement, np.random.default_rng(0), sr=SR, duration=duration)
    with pytest.raises(EmofuseError):
        sample_voice(np.random.default_rng(0), "child")


def test_frame_means_averages_each_frames_samples():
    envelope = np.r_[np.zeros(16000), np.ones(16000)].astype(np.float32)  # 2 s, step at 1 s
    per_frame = frame_means(envelope, 30)  # 15 fps: frames 0-14 silent, 15-29 loud
    np.testing.assert_allclose(per_frame, np.r_[np.zeros(15), np.ones(15)])
    ramp = np.arange(10.0)
    np.testing.assert_allclose(frame_means(ramp, 3), [1.0, 4.5, 8.0])  # samples 0-2, 3-6, 7-9


def test_face_shows_valence(corpus):
    """Face crops (Haar detector) averaged over happy takes differ from sad ones far more
    than two halves of the happy takes differ from each other."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def mean_face(path):
        video, crops = cv2.VideoCapture(str(path)), []
        while (frame := video.read()[1]) is not None:
            grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
            faces = cascade.detectMultiScale(grey, 1.1, 3, minSize=(30, 30))
            if len(faces):
                x, y, w, h = max(faces, key=lambda r: r[2] * r[3])
                crops.append(cv2.resize(grey[y:y + h, x:x + w], (48, 48)).astype(np.float32))
        assert len(crops) > 10
        return np.mean(crops[len(crops) // 3: 2 * len(crops) // 3], axis=0)  # expression at its height

    happy = [mean_face(p) for p in sorted((corpus / "Actor_01").glob("02-01-03-*.mp4"))]
    sad = [mean_face(p) for p in sorted((corpus / "Actor_01").glob("02-01-04-*.mp4"))]
    lower = slice(28, 46)  # mouth
    between = np.abs(np.mean(happy, 0) - np.mean(sad, 0))[lower].mean()
    within = np.abs(np.mean(happy[::2], 0) - np.mean(happy[1::2], 0))[lower].mean()
    assert between > 1.3 * within
