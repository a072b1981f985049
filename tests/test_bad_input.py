"""Bad input end to end: one corpus of broken, odd and extreme files beside good ones, extracted once.

Every case ends either processed, with values that make sense, or listed -- in the store's
failures table and in the output of ``python -m features extract`` -- with its file, its
stage and a message a user understands.  Files the corpus reader cannot use are printed with
the reason.  The summary counts them all and the exit status is 3.  The later stages refuse
what they cannot evaluate (a fold without a class, one speaker) with a clear message.
"""

import contextlib
import io
import os
import re
import shutil
import struct
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import soundfile as sf

from extract.decode import load_audio
from extract.synthetic.corpus import Take, synthesize_take
from features.audio import pitch
from features.__main__ import main as features_main
from features.runner import default_config, extract_clip, run_features
from features.store import FeatureStore, merge_stores, store_path
from fusion.__main__ import main as fusion_main

SR, FPS = 16000, 15.0
LONG_SECONDS = 120  # the "long" clip: 10 minutes cost ~17 s of CPU (eGeMAPS alone ~10 s), 2 minutes ~3 s


@dataclass
class Case:
    """One clip of the corpus: its id, the file of the case and the stage it tests."""

    clip_id: str
    path: Path
    stage: str


def take_name(modality: str, actor: int, emotion: str = "01") -> str:
    """RAVDESS file name of statement 01, repetition 01, normal intensity."""
    return f"{modality}-01-{emotion}-01-01-01-{actor:02d}" + (".wav" if modality == "03" else ".mp4")


def write_mp4(path: Path, frames) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()


def harmonic_tone(sr: int, seconds: float = 1.0) -> np.ndarray:
    """A 200 Hz voice-like tone (harmonics 1-8 at 1/k amplitude, peak 0.5, all below 4 kHz) in
    room noise about 50 dB below it, of the same level per Hz at any rate."""
    t = np.arange(int(sr * seconds)) / sr
    y = sum(np.sin(2 * np.pi * 200 * k * t) / k for k in range(1, 9))
    noise = np.random.default_rng(sr).standard_normal(len(t)) * 1e-3 * np.sqrt(sr / 16000)
    return 0.5 * y / np.abs(y).max() + noise


# The same tone in every encoding and rate: (sampling rate, subtype, channels).
FORMATS = {
    "float_16k": (16000, "FLOAT", 1),
    "u8_8k": (8000, "PCM_U8", 1),
    "pcm24_22k": (22050, "PCM_24", 1),
    "float_44k": (44100, "FLOAT", 1),
    "stereo_pcm16_48k": (48000, "PCM_16", 2),
}


def build_corpus(root: Path) -> tuple:
    """Write the corpus; return the cases by name (each case is its own actor, i.e. speaker) and
    the number of frames of the good video, which the video cases reuse."""
    actor_dir = root / "Actor_01"
    actor_dir.mkdir(parents=True)
    cases, actors = {}, iter(range(1, 99))

    def add(name, modality, write, stage, emotion="01"):
        actor = next(actors)
        path = actor_dir / take_name(modality, actor, emotion)
        write(path)
        cases[name] = Case(path.stem[3:], path, stage)  # the clip id drops the modality
        return path

    # Good clips with faces: a neutral and an angry take, both modalities.
    speech, frames = synthesize_take(Take("01", "01", "01", "01", 1), seed=0)
    angry_speech, angry_frames = synthesize_take(Take("05", "01", "01", "01", 2), seed=0)
    good = add("good", "03", lambda p: sf.write(p, speech, SR), "both")
    write_mp4(good.with_name(take_name("02", 1)), frames)
    angry = add("good_angry", "03", lambda p: sf.write(p, angry_speech, SR), "both", emotion="05")
    write_mp4(angry.with_name(take_name("02", 2, "05")), angry_frames)
    wav = good.read_bytes()
    rng = np.random.default_rng(0)

    # Audio cases (audio-only clips).
    scrambled = bytearray(wav)
    scrambled[12:40] = rng.integers(0, 256, 28, dtype=np.uint8).tobytes()
    add("corrupt_wav", "03", lambda p: p.write_bytes(bytes(scrambled)), "audio")
    add("truncated_wav", "03", lambda p: p.write_bytes(wav[: len(wav) // 2]), "audio")
    add("empty_wav", "03", lambda p: p.touch(), "audio")
    add("text_as_wav", "03", lambda p: p.write_text("emotion,label\nthis is a CSV, not audio\n"), "audio")
    add("silent_wav", "03", lambda p: sf.write(p, np.zeros(SR), SR), "audio")
    clipped = np.clip(3 * np.sin(2 * np.pi * 220 * np.arange(SR) / SR), -1, 1)
    add("clipped_wav", "03", lambda p: sf.write(p, clipped, SR), "audio")
    add("short_wav", "03", lambda p: sf.write(p, speech[SR : SR + SR // 20], SR), "audio")
    add("long_wav", "03", lambda p: sf.write(p, np.resize(speech, LONG_SECONDS * SR), SR), "audio")
    for bad_value in ("nan", "inf"):
        poisoned = speech.copy()
        poisoned[1000] = float(bad_value)
        add(f"{bad_value}_in_wav", "03", lambda p, y=poisoned: sf.write(p, y, SR, subtype="FLOAT"), "audio")
    one_hertz = bytearray(wav)
    one_hertz[24:32] = struct.pack("<II", 1, 2)  # header: 1 Hz, 2 bytes per second
    add("wav_rate_1hz", "03", lambda p: p.write_bytes(bytes(one_hertz)), "audio")
    for name, (rate, subtype, channels) in FORMATS.items():
        tone = np.tile(harmonic_tone(rate)[:, None], (1, channels))
        add(name, "03", lambda p, y=tone, r=rate, s=subtype: sf.write(p, y, r, subtype=s), "audio")

    # Video cases (video-only clips, except where noted).
    mp4_path = good.with_name(take_name("02", 1))
    mp4 = mp4_path.read_bytes()
    add("corrupt_mp4", "02", lambda p: p.write_bytes(rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()), "video")
    add("truncated_mp4", "02", lambda p: p.write_bytes(mp4[: len(mp4) // 2]), "video")
    add("empty_mp4", "02", lambda p: p.touch(), "video")
    add("one_frame_mp4", "02", lambda p: write_mp4(p, frames[:1]), "video")
    add("no_face_mp4", "02", lambda p: write_mp4(p, np.full_like(frames, 128)), "video")
    few = frames.copy()
    few[5:] = 128  # the face in the first 5 frames only
    add("face_in_few_frames", "02", lambda p: write_mp4(p, few), "video")
    short_audio = add("lengths_differ", "03", lambda p: sf.write(p, speech[:SR], SR), "both")
    shutil.copy(mp4_path, short_audio.with_name(take_name("02", int(short_audio.stem[-2:]))))
    add("mp4_without_audio_track", "01", lambda p: write_mp4(p, frames), "both")

    # Files the reader cannot use (read after Actor_01/): names that don't parse, a wrong
    # modality, a second file of the good take.
    extra = root / "extra"
    extra.mkdir()
    for name in ("hello.wav", "03-01-09-01-01-01-99.wav", "02-01-01-01-01-01-99.wav", good.with_suffix(".flac").name):
        (extra / name).write_bytes(wav)
    return cases, len(frames)


UNUSED = {
    "hello.wav": "not a RAVDESS name",
    "03-01-09-01-01-01-99.wav": "emotion 09 is not 01..08",
    "02-01-01-01-01-01-99.wav": "modality 02 does not match a .wav file",
    "03-01-01-01-01-01-01.flac": "duplicate of",
}
STORED = {"good", "good_angry", "truncated_wav", "silent_wav", "clipped_wav", "short_wav", "long_wav",
          *FORMATS, "one_frame_mp4", "face_in_few_frames", "lengths_differ", "mp4_without_audio_track"}
FAILED = {  # case: what the message says
    "corrupt_wav": "cannot decode audio",
    "empty_wav": "file is empty (0 bytes)",
    "text_as_wav": "cannot decode audio (",
    "nan_in_wav": "NaN or infinite samples",
    "inf_in_wav": "NaN or infinite samples",
    "wav_rate_1hz": "implausible sampling rate of 1 Hz",
    "corrupt_mp4": "cannot open video",
    "truncated_mp4": "cannot open video",
    "empty_mp4": "file is empty (0 bytes)",
    "no_face_mp4": "no face found in any of",
}
PARTIAL = {  # stored, with one modality's problem listed
    "short_wav": ("audio", "88 of 88 egemaps features are NaN or infinite"),
    "mp4_without_audio_track": ("audio", "the file has no audio track"),
}


@dataclass
class Run:
    code: int
    output: str
    data: Path
    cache: Path
    cases: dict
    n_frames: int

    @property
    def store(self) -> Path:
        return store_path("synthetic", self.cache)


def extract(data, cache) -> tuple:
    """``python -m features extract`` in-process (one job); its exit status and output."""
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = features_main(["extract", "--dataset", "synthetic", "--data-dir", str(data), "--cache-dir",
                              str(cache), "--jobs", "1", "--no-progress"])
    return code, output.getvalue()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    data, cache = tmp_path_factory.mktemp("bad_corpus"), tmp_path_factory.mktemp("cache")
    cases, n_frames = build_corpus(data)
    with pytest.warns(UserWarning, match="too short"):  # openSMILE, on the 0.05 s clip
        code, output = extract(data, cache)
    return Run(code, output, data, cache, cases, n_frames)


def functionals_of(run, case, family) -> dict:
    """Name -> value of one family's functionals of a case's clip."""
    with FeatureStore.open(run.store) as store:
        row = list(store.clips["clip_id"]).index(run.cases[case].clip_id)
        values, names = store.functionals(families=[family])
    return dict(zip(names, values[row]))


def sequence_of(run, case, family) -> np.ndarray:
    with FeatureStore.open(run.store) as store:
        return store.sequence(run.cases[case].clip_id, family).values


def test_the_run_finishes_with_status_3_and_a_summary_that_counts(run):
    assert run.code == 3
    assert set(run.cases) == STORED | set(FAILED)
    assert (f"{len(run.cases)} clips; {len(STORED)} done now, 0 already stored, {len(FAILED)} failed, "
            f"{len(PARTIAL)} with a failed modality; {len(UNUSED)} files not used") in run.output
    with FeatureStore.open(run.store) as store:
        assert set(store.clips["clip_id"]) == {run.cases[c].clip_id for c in STORED}
        assert len(store.failures) == len(FAILED) + len(PARTIAL)


@pytest.mark.parametrize("case", sorted({**FAILED, **PARTIAL}))
def test_each_failure_names_its_file_stage_and_reason(run, case):
    stage, message = PARTIAL.get(case) or (run.cases[case].stage, FAILED[case])
    path = run.cases[case].path
    with FeatureStore.open(run.store) as store:
        rows = store.failures[store.failures["clip_id"] == run.cases[case].clip_id]
    assert list(rows["stage"]) == [stage] and list(rows["path"]) == [str(path)]
    assert message in rows["error"].iloc[0]
    assert f"  failed [{stage}] {path}: " in run.output and message in run.output


@pytest.mark.parametrize("name", sorted(UNUSED))
def test_each_unused_file_is_printed_with_its_reason(run, name):
    line = next(line for line in run.output.splitlines() if line.startswith(f"  not used {run.data}/extra/{name}:"))
    assert UNUSED[name] in line


def test_truncated_wav_keeps_the_samples_it_has(run):
    half = (len(run.cases["good"].path.read_bytes()) // 2 - 44) // 2  # 16-bit samples after the header
    assert abs(len(sequence_of(run, "truncated_wav", "mfcc")) - (1 + half // 160)) <= 1


def test_no_face_failure_counts_the_frames(run):
    assert f"no face found in any of {run.n_frames} frames" in run.output


def test_silent_audio_is_at_the_floor_and_unvoiced(run):
    energy, pitch = functionals_of(run, "silent_wav", "energy"), functionals_of(run, "silent_wav", "pitch")
    assert energy["rms_max"] == 0 and energy["log_energy_mean"] == pytest.approx(-100.0)
    assert pitch["voiced_fraction"] == 0 and np.isnan(pitch["f0_voiced_mean"])
    assert np.isfinite(list(functionals_of(run, "silent_wav", "egemaps").values())).all()


def test_clipped_audio_keeps_its_pitch_and_loudness(run):
    pitch, energy = functionals_of(run, "clipped_wav", "pitch"), functionals_of(run, "clipped_wav", "energy")
    zcr = functionals_of(run, "clipped_wav", "zcr")
    assert pitch["f0_voiced_p50"] == pytest.approx(220, rel=0.02) and pitch["voiced_fraction"] > 0.9
    assert 0.9 < energy["rms_p50"] <= 1.0 and zcr["zcr_p50"] == pytest.approx(2 * 220 / SR, rel=0.1)


def test_short_clip_keeps_frame_features_and_lists_egemaps(run):
    assert sequence_of(run, "short_wav", "mfcc").shape == (1 + (SR // 20) // 160, 120)
    assert np.isfinite(list(functionals_of(run, "short_wav", "mfcc").values())).all()
    assert np.isnan(list(functionals_of(run, "short_wav", "egemaps").values())).all()
    assert "for 0.05 s of audio" in run.output


def test_long_clip_is_processed_whole(run):
    mfcc = sequence_of(run, "long_wav", "mfcc")
    assert mfcc.shape == (1 + LONG_SECONDS * SR // 160, 120) and np.isfinite(mfcc).all()
    # The clip repeats the good take, so its loudness statistics are the take's.
    long, once = functionals_of(run, "long_wav", "energy"), functionals_of(run, "good", "energy")
    assert long["rms_mean"] == pytest.approx(once["rms_mean"], rel=0.05)


def test_pitch_memory_does_not_grow_with_the_clip(run):
    """The pitch tracker works through long clips in blocks (it once held 2.6 MB per second)."""
    y = load_audio(run.cases["long_wav"].path)

    def peak_bytes(signal):
        tracemalloc.start()
        pitch(signal, SR)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    assert peak_bytes(y) < 2 * peak_bytes(y[: len(y) // 10]) < 64 * 2**20


@pytest.mark.parametrize("name", [n for n in FORMATS if n != "float_16k"])
def test_every_wav_encoding_and_rate_gives_the_features_of_the_same_tone(run, name):
    reference = {f: functionals_of(run, "float_16k", f) for f in ("pitch", "energy", "zcr", "mfcc", "chroma")}
    other = {f: functionals_of(run, name, f) for f in reference}
    assert other["pitch"]["f0_voiced_p50"] == pytest.approx(200, rel=0.01)
    assert other["pitch"]["voiced_fraction"] == pytest.approx(reference["pitch"]["voiced_fraction"], abs=0.05)
    assert other["energy"]["rms_p50"] == pytest.approx(reference["energy"]["rms_p50"], rel=0.03)
    assert other["zcr"]["zcr_p50"] == pytest.approx(reference["zcr"]["zcr_p50"], rel=0.15)
    chroma = [f"chroma_{c}_mean" for c in ("C", "Cs", "D", "Ds", "E", "F", "Fs", "G", "Gs", "A", "As", "B")]
    assert np.argmax([other["chroma"][c] for c in chroma]) == np.argmax([reference["chroma"][c] for c in chroma])
    # MFCCs describe the whole 0-8 kHz band: an 8 kHz file has nothing above 4 kHz (and 8-bit
    # quantisation noise at -50 dB below), so only the other encodings must give the same ones.
    if name != "u8_8k":
        low_order = [f"mfcc_{k}_p50" for k in range(1, 13)]
        np.testing.assert_allclose([other["mfcc"][n] for n in low_order],
                                   [reference["mfcc"][n] for n in low_order], atol=3.0)


def test_one_frame_video_is_processed(run):
    assert sequence_of(run, "one_frame_mp4", "hog").shape == (1, 1764)
    assert functionals_of(run, "one_frame_mp4", "stip")["stip_count"] == 0
    hog = functionals_of(run, "one_frame_mp4", "hog")
    assert np.isfinite(hog["hog_b0_0_c0_0_o0_mean"]) and np.isnan(hog["hog_b0_0_c0_0_o0_absdiff_mean"])


def test_face_in_a_few_frames_is_held_over_the_blank_ones(run):
    hog = sequence_of(run, "face_in_few_frames", "hog")
    assert hog.shape == (run.n_frames, 1764) and np.isfinite(hog).all()
    assert (np.abs(hog[:5]).sum(axis=1) > 1).all()  # the face's gradients
    assert np.abs(hog[10:]).max() < 1e-3  # a flat grey crop has none


def test_audio_and_video_of_different_lengths_keep_their_own(run):
    assert len(sequence_of(run, "lengths_differ", "mfcc")) == 1 + SR // 160
    assert len(sequence_of(run, "lengths_differ", "hog")) == run.n_frames


def test_video_of_a_clip_without_audio_track_is_kept(run):
    assert np.isfinite(list(functionals_of(run, "mp4_without_audio_track", "hog_summary").values())).all()
    assert np.isnan(list(functionals_of(run, "mp4_without_audio_track", "mfcc").values())).all()


def test_rerun_retries_failures_and_picks_up_a_repaired_file(run, tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    shutil.copytree(run.data, data)
    shutil.copytree(run.cache, cache)
    store = store_path("synthetic", cache)
    with FeatureStore.open(store) as copied:  # the copy of the corpus is the store's corpus now
        merge_stores(store, [store], corpus={**copied.corpus, "root": str(data.resolve())})
    repaired = data / run.cases["corrupt_wav"].path.relative_to(run.data)
    shutil.copy(run.cases["good"].path, repaired)
    code, output = extract(data, cache)
    assert code == 3
    # the repaired clip and the clips with a failed modality are extracted again
    assert (f"{1 + len(PARTIAL)} done now, {len(STORED) - len(PARTIAL)} already stored, {len(FAILED) - 1} failed, "
            f"{len(PARTIAL)} with a failed modality") in output
    with FeatureStore.open(store_path("synthetic", cache)) as store:
        assert run.cases["corrupt_wav"].clip_id in set(store.clips["clip_id"])
        assert run.cases["corrupt_wav"].clip_id not in set(store.failures["clip_id"])
        assert len(store.failures) == len(FAILED) - 1 + len(PARTIAL)
    np.testing.assert_array_equal(sequence_of(Run(0, "", data, cache, run.cases, 0), "corrupt_wav", "mfcc"),
                                  sequence_of(run, "good", "mfcc"))


def test_check_passes_on_the_store(run, capsys):
    code = features_main(["check", str(run.store), "--dataset", "synthetic", "--data-dir", str(run.data)])
    assert code == 0 and capsys.readouterr().out.strip().endswith(": OK")


def drop_last_mfcc_row(path):
    with h5py.File(path, "r+") as h5:
        values = h5["functionals/mfcc/values"][:-1]
        del h5["functionals/mfcc/values"]
        h5["functionals/mfcc/values"] = values


def cut_in_half(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage, problem", [
    (drop_last_mfcc_row, f"mfcc: {len(STORED) - 1} rows for {len(STORED)} clips"),
    (cut_in_half, "cannot open feature store"),
])
def test_check_names_the_damage_of_a_broken_copy(run, tmp_path, capsys, damage, problem):
    broken = tmp_path / "features.h5"
    shutil.copy(run.store, broken)
    damage(broken)
    assert features_main(["check", str(broken)]) == 1
    out = capsys.readouterr().out
    assert problem in out and out.strip().endswith("problems")


def test_fold_without_a_training_clip_of_a_class_is_refused(run, capsys):
    """The only angry clip's speaker is tested in some fold: that fold cannot learn 'angry'."""
    assert fusion_main(["--dataset", "synthetic", "--cache-dir", str(run.cache), "--method", "concat"]) == 2
    err = capsys.readouterr().err
    assert "class(es) angry have no audio training clips" in err
    assert "02" in re.search(r"test speakers ([0-9, ]+)\)", err).group(1).split(", ")


def test_one_speaker_corpus_is_refused_by_speaker_protocols(run, tmp_path, capsys):
    data = tmp_path / "data" / "Actor_01"
    data.mkdir(parents=True)
    for statement in ("01", "02"):
        shutil.copy(run.cases["good"].path, data / f"03-01-01-01-{statement}-01-01.wav")
    summary = run_features("synthetic", data.parent, jobs=1, cache_dir=tmp_path / "cache", progress=False)
    assert (summary.done, summary.failed) == (2, 0)
    for protocol in ("speaker", "loso"):
        code = fusion_main(["--dataset", "synthetic", "--cache-dir", str(tmp_path / "cache"), "--protocol", protocol])
        assert code == 2 and f"protocol '{protocol}' needs at least 2 speakers, got 1" in capsys.readouterr().err


def test_a_folder_in_place_of_a_file_is_named(tmp_path):
    folder = tmp_path / "03-01-01-01-01-01-01.wav"
    folder.mkdir()
    result = extract_clip({"clip_id": "x", "audio_path": str(folder), "video_path": ""}, default_config())
    assert result.failures == [("audio", str(folder), f"{folder}: is a folder, not a file")]


def test_unreadable_file_is_named(run, tmp_path):
    path = tmp_path / "locked.wav"
    shutil.copy(run.cases["good"].path, path)
    path.chmod(0)
    if os.access(path, os.R_OK):
        pytest.skip("running as root: a file with mode 000 is still readable")
    result = extract_clip({"clip_id": "x", "audio_path": str(path), "video_path": ""}, default_config())
    assert result.failures == [("audio", str(path), f"{path}: permission denied (the file is not readable)")]
