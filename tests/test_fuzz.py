"""Fuzzing: random arrays into every feature function, random names and bytes into every reader.

Each call either returns what its docstring promises (shape, dtype, finite values where
documented) or raises the library's own error, ``extract.errors.EmofuseError``.  Anything
else -- a numpy ValueError, a cv2.error, a pandas ParserError, a crash -- fails the test.
"""

import io
import os
import string

import cv2
import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extract import corpora
from extract.decode import NATIVE_SR_RANGE, iter_grey_frames, load_audio, video_info
from extract.errors import EmofuseError
from extract.faces import detect_faces, track_faces
from features import audio
from features.functionals import STATISTICS, functionals
from features.stip import DESCRIPTOR_NAMES, POINT_COLUMNS, stip_features
from features.stream import Stream
from features.video import VideoConfig, frame_functionals, hog_descriptors, summary_hog, video_features

# 25 examples per test keeps the file at ~10 s; FUZZ_EXAMPLES=2000 for a deeper search.
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", 25)), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
HOP = 160
RATES = [16000, 8000, 22050, 100, 1e6, 0, -16000, float("nan"), float("inf"), True, "16000"]


def own_error_or(call):
    """``call()``'s result, or None when it raised an EmofuseError; any other exception propagates."""
    try:
        return call()
    except EmofuseError as err:
        assert str(err), "an error must say what is wrong"
        return None


@st.composite
def signals(draw, max_length=4000):
    """Random 'audio': noise, silence, a constant or a tone at any scale; any float or int dtype;
    sometimes a NaN or inf sample; sometimes the wrong number of dimensions."""
    n = draw(st.integers(0, max_length))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = draw(st.sampled_from(["noise", "tone", "constant"]))
    base = {"noise": rng.standard_normal(n), "tone": np.sin(2 * np.pi * 200 / 16000 * np.arange(n)),
            "constant": np.ones(n)}[shape]
    y = base * draw(st.sampled_from([0.0, 1e-30, 1e-6, 0.5, 1.0, 1e3]))
    y = y.astype(draw(st.sampled_from([np.float32, np.float64, np.int16, np.complex64])))
    if n and y.dtype.kind == "f" and draw(st.booleans()):
        y[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    layout = draw(st.sampled_from(["mono"] * 4 + ["stereo", "scalar"]))
    return {"mono": y, "stereo": np.stack([y, y]), "scalar": np.asarray(y[0] if n else 0.5)}[layout]


def is_valid_signal(y, sr):
    return (y.ndim == 1 and y.size > 0 and y.dtype.kind == "f" and bool(np.isfinite(y).all())
            and isinstance(sr, (int, float)) and not isinstance(sr, bool) and 0 < sr < np.inf)


FAMILIES = {  # function, rows of its (d, t) output
    "mfcc": (audio.mfcc, 120),
    "zcr": (audio.zero_crossing_rate, 1),
    "energy": (audio.energy, 2),
    "chroma": (audio.chroma, 12),
    "log_mel": (audio.log_mel, 64),
}


@pytest.mark.filterwarnings("ignore")  # librosa warns about empty mel filters at odd rates
@FUZZ
@given(y=signals(), sr=st.sampled_from(RATES))
def test_audio_families_return_their_shape_or_a_feature_error(y, sr):
    for name, (family, rows) in FAMILIES.items():
        values = own_error_or(lambda: family(y, sr))
        if values is None:
            continue
        assert is_valid_signal(y, sr), f"{name} accepted a bad signal {y.dtype} {y.shape} at sr={sr!r}"
        assert values.shape == (rows, 1 + y.size // HOP), name
        if np.abs(y).max() <= 1e3:  # within any sane scale the values are finite
            assert np.isfinite(values).all(), name
    result = own_error_or(lambda: audio.pitch(y, sr))
    if result is not None:
        f0, voiced = result
        assert f0.shape == voiced.shape == (1 + y.size // HOP,) and voiced.dtype == bool
        assert np.isnan(f0[~voiced]).all() and (f0[voiced] > 0).all()


@pytest.mark.filterwarnings("ignore")
@FUZZ
@given(y=signals(), sr=st.sampled_from([16000, 8000, 16000.0, 0, float("nan")]))
def test_audio_streams_share_one_clock_or_raise_a_feature_error(y, sr):
    config = own_error_or(lambda: audio.AudioConfig(sr=sr))
    streams = config and own_error_or(lambda: audio.audio_streams(y, sr, config))
    if not streams:
        return
    assert is_valid_signal(y, sr)
    assert {len(s.values) for s in streams.values()} == {1 + y.size // HOP}
    for stream in streams.values():
        assert stream.values.dtype == np.float32 and stream.values.shape[1] == len(stream.names)
        values, names = functionals(stream)
        assert values.shape == (len(names),)


@pytest.mark.filterwarnings("ignore")  # openSMILE warns on clips too short for it
@settings(max_examples=8, deadline=None)
@given(y=signals(max_length=8000), sr=st.sampled_from([16000, 8000, 0]))
def test_egemaps_gives_88_values_or_a_feature_error(y, sr):
    result = own_error_or(lambda: audio.egemaps(y, sr))
    if result is not None:
        values, names = result
        assert is_valid_signal(y, sr)
        assert values.shape == (88,) and len(names) == 88 and values.dtype == np.float32


@st.composite
def streams(draw):
    """A Stream of random values (any scale, NaN and inf sprinkled in), sometimes with a voicing column."""
    t, d = draw(st.integers(0, 50)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = rng.standard_normal((t, d)) * draw(st.sampled_from([0.0, 1e-20, 1.0, 1e20]))
    for _ in range(draw(st.integers(0, 3))):
        if t:
            values[rng.integers(t), rng.integers(d)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    names = [f"c{i}" for i in range(d)]
    if d > 1 and draw(st.booleans()):
        names[0] = "voiced"
        values[:, 0] = rng.integers(0, 2, t)
    rate = draw(st.sampled_from([100.0, 15.0, 1e-3, 0.0, -1.0, float("nan"), float("inf")]))
    return Stream(values, names, frame_rate=rate)


@FUZZ
@given(stream=streams())
def test_functionals_have_their_documented_length_or_raise_a_feature_error(stream):
    result = own_error_or(lambda: functionals(stream))
    if result is None:
        return
    values, names = result
    d = stream.values.shape[1]
    expected = len(STATISTICS) * (d - 1) + 1 if "voiced" in stream.names else len(STATISTICS) * d
    assert 0 < stream.frame_rate < np.inf and not np.isinf(stream.values).any()
    assert values.shape == (expected,) == (len(names),) and values.dtype == np.float32
    assert not np.isinf(values).any()


@st.composite
def face_clips(draw):
    """Random 'face crops' (any size and dtype, noise or flat), validity mask and frame rate."""
    t, side = draw(st.integers(0, 14)), draw(st.sampled_from([0, 1, 8, 15, 16, 24, 32]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    crops = rng.integers(0, 256, (t, side, side)) if draw(st.booleans()) else np.full((t, side, side), 128)
    crops = crops.astype(draw(st.sampled_from([np.uint8] * 3 + [np.float64, np.int32])))
    valid = rng.random(t) < draw(st.sampled_from([0.0, 0.5, 1.0]))
    if draw(st.booleans()):
        valid = valid.astype(int)  # the wrong dtype
    fps = draw(st.sampled_from([15.0, 30, 0.0, -1.0, float("nan")]))
    return crops, valid, fps


@FUZZ
@given(clip=face_clips())
def test_video_features_return_their_shapes_or_raise_a_feature_error(clip):
    crops, valid, fps = clip
    side = crops.shape[1]
    config = own_error_or(lambda: VideoConfig(crop_size=side))
    result = config and own_error_or(lambda: video_features(crops, valid, fps, config))
    points = own_error_or(lambda: stip_features(crops, valid, fps))
    if points is not None:
        table, (encoding, names) = points
        assert table.values.shape[1] == len(POINT_COLUMNS) + len(DESCRIPTOR_NAMES)
        assert encoding.shape == (len(names),) and np.isfinite(encoding).all()
        assert crops.dtype == np.uint8 and valid.dtype == bool and fps > 0
    if result is None:
        return
    assert crops.dtype == np.uint8 and valid.dtype == bool and fps > 0 and len(crops) > 0
    streams, clip_level = result
    n_hog = 36 * (side // 8 - 1) ** 2
    assert streams["hog"].values.shape == (len(crops), n_hog)
    assert np.isnan(streams["hog"].values[~valid]).all() and np.isfinite(streams["hog"].values[valid]).all()
    assert clip_level["hog_summary"][0].shape == (n_hog,) and clip_level["stip"][0].shape == (58,)
    assert clip_level["hog"][0].shape == (4 * n_hog,)


@FUZZ
@given(shape=st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 40)),
       dims=st.sampled_from([3, 3, 2, 4]), dtype=st.sampled_from([np.uint8, np.float32, bool]),
       seed=st.integers(0, 2**32 - 1))
def test_hog_returns_its_shape_or_raises_a_feature_error(shape, dims, dtype, seed):
    images = np.random.default_rng(seed).random(shape).astype(dtype)
    images = images.reshape(shape[0] * shape[1], shape[2]) if dims == 2 else \
        images[..., None] if dims == 4 else images
    hog = own_error_or(lambda: hog_descriptors(images))
    if hog is not None:
        n, h, w = images.shape
        assert hog.shape == (n, (h // 8 - 1) * (w // 8 - 1) * 36) and np.isfinite(hog).all()
        assert (hog >= 0).all() and (hog <= 1).all()
    summary = own_error_or(lambda: summary_hog(images, np.ones(len(images), bool)))
    if summary is not None:
        assert images.ndim == 3 and shape[1] == shape[2]
        assert summary[0].shape == (len(summary[1]),)
    values, names = frame_functionals(Stream(np.zeros((shape[0], 3)), ["a", "b", "c"], frame_rate=15.0))
    assert values.shape == (12,) == (len(names),)


@FUZZ
@given(height=st.integers(1, 90), width=st.integers(1, 90), channels=st.sampled_from([None, 3, 1, 4]),
       dtype=st.sampled_from([np.uint8] * 3 + [np.float32, np.int16]), seed=st.integers(0, 2**32 - 1))
def test_face_detection_on_random_frames(height, width, channels, dtype, seed):
    shape = (height, width) if channels is None else (height, width, channels)
    image = np.random.default_rng(seed).integers(0, 256, shape).astype(dtype)
    boxes = own_error_or(lambda: detect_faces(image))
    if boxes is not None:
        assert image.dtype == np.uint8 and channels in (None, 3)
        assert boxes.ndim == 2 and boxes.shape[1] == 4 and (boxes[:, 2:] > 0).all()


@FUZZ
@given(n_frames=st.integers(0, 6), height=st.integers(1, 60), width=st.integers(1, 60),
       fps=st.sampled_from([15.0, 0.0, float("nan")]), seed=st.integers(0, 2**32 - 1),
       mixed_sizes=st.booleans())
def test_face_tracking_on_random_frames(n_frames, height, width, fps, seed, mixed_sizes):
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (height + (mixed_sizes and i % 2), width, 3), dtype=np.uint8)
              for i in range(n_frames)]
    track = own_error_or(lambda: track_faces(frames, fps, crop_size=16))
    if track is not None:
        assert fps > 0 and not (mixed_sizes and n_frames > 1)
        assert track.crops.shape == (n_frames, 16, 16) and track.boxes.shape == (n_frames, 4)
        assert track.valid.shape == track.detected.shape == (n_frames,)
        assert np.isfinite(track.boxes[track.valid]).all() and np.isnan(track.boxes[~track.valid]).all()


# ---------------------------------------------------------------- readers

NAME_CHARACTERS = string.ascii_letters + string.digits + "-_ .()"
RAVDESS_LIKE = st.lists(st.sampled_from(["01", "02", "03", "05", "08", "09", "00", "24", "1", "xx"]),
                        min_size=6, max_size=8).map("-".join)
CREMAD_LIKE = st.tuples(st.sampled_from(["1001", "1091", "12", "abcd"]), st.sampled_from(["DFA", "IEO", "dfa"]),
                        st.sampled_from(["ANG", "HAP", "XYZ"]), st.sampled_from(["XX", "LO", "HI", "ZZ"])).map("_".join)
STEMS = st.one_of(RAVDESS_LIKE, CREMAD_LIKE, st.text(NAME_CHARACTERS, min_size=1, max_size=24))
SUFFIXES = st.sampled_from([".wav", ".flac", ".mp4", ".flv", ".WAV", ".txt", ""])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


def fresh_folder(scratch, *parts):
    folder = scratch.joinpath(*parts)
    if folder.exists():
        for path in sorted(folder.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def media_files(folder, hidden):
    """Paths of the audio and video files under ``folder``, with or without hidden ones."""
    return {str(p) for p in folder.rglob("*") if p.is_file() and (hidden or not p.name.startswith("."))
            and p.suffix.lower() in corpora.AUDIO_SUFFIXES | corpora.VIDEO_SUFFIXES}


@FUZZ
@given(names=st.lists(st.tuples(STEMS, SUFFIXES), max_size=12), in_actor_folder=st.booleans())
def test_ravdess_reader_accounts_for_every_file(scratch, names, in_actor_folder):
    root = fresh_folder(scratch, "ravdess")
    folder = root / "Actor_01" if in_actor_folder else root
    folder.mkdir(exist_ok=True)
    for stem, suffix in names:
        (folder / f"{stem}{suffix}").touch()
    corpus = own_error_or(lambda: corpora.read_ravdess(root, vocal_channel="both"))
    if corpus is None:
        return
    used = set(corpus.clips["audio_path"]) | set(corpus.clips["video_path"])
    skipped = {path for path, _ in corpus.skipped}
    assert media_files(root, hidden=False) == (used - {""}) | skipped and not used & skipped
    assert corpus.clips["clip_id"].is_unique
    assert set(corpus.clips["label"]) <= set(corpora.RAVDESS_EMOTIONS.values())


@FUZZ
@given(audio_names=st.lists(st.tuples(STEMS, SUFFIXES), max_size=8),
       video_names=st.lists(st.tuples(STEMS, SUFFIXES), max_size=8),
       demographics=st.one_of(st.none(), st.binary(max_size=60), st.just(b"ActorID,Sex\n1001,Male\n1091,\n")))
def test_cremad_reader_accounts_for_every_file(scratch, audio_names, video_names, demographics):
    root = fresh_folder(scratch, "cremad")
    for folder, names in (("AudioWAV", audio_names), ("VideoMP4", video_names)):
        (root / folder).mkdir()
        for stem, suffix in names:
            (root / folder / f"{stem}{suffix}").touch()
    if demographics is not None:
        (root / "VideoDemographics.csv").write_bytes(demographics)
    corpus = own_error_or(lambda: corpora.read_cremad(root))
    if corpus is None:
        return
    used = set(corpus.clips["audio_path"]) | set(corpus.clips["video_path"])
    expected = {p for p in media_files(root, hidden=True) if p.lower().endswith(tuple(
        corpora.AUDIO_SUFFIXES if "/AudioWAV/" in p else corpora.VIDEO_SUFFIXES))}
    assert expected == (used - {""}) | {path for path, _ in corpus.skipped}
    assert corpus.clips["clip_id"].is_unique


MANIFEST_CELLS = st.sampled_from(["a.wav", "b.mp4", "", " ", "angry", "01", '"', "x,y", "\u00e9", "/abs/c.wav"])


@FUZZ
@given(text=st.one_of(
    st.binary(max_size=200),
    st.lists(st.lists(MANIFEST_CELLS, min_size=1, max_size=6).map(",".join), max_size=6)
    .map(lambda rows: "\n".join(["audio_path,video_path,label,speaker,clip_id", *rows]).encode()),
))
def test_manifest_reader_gives_a_corpus_or_a_corpus_error(scratch, text):
    folder = fresh_folder(scratch, "manifest")
    (folder / "manifest.csv").write_bytes(text)
    corpus = own_error_or(lambda: corpora.read_manifest(folder))
    if corpus is not None:
        assert len(corpus.clips) and corpus.clips["clip_id"].is_unique
        assert ((corpus.clips["audio_path"] != "") | (corpus.clips["video_path"] != "")).all()


def small_wav(subtype):
    buffer = io.BytesIO()
    sf.write(buffer, 0.3 * np.sin(np.arange(800) / 5), 8000, format="WAV", subtype=subtype)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def small_mp4(tmp_path_factory):
    path = tmp_path_factory.mktemp("mp4") / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 15.0, (32, 24))
    for i in range(4):
        writer.write(np.full((24, 32, 3), 60 * i, np.uint8))
    writer.release()
    return path.read_bytes()


@st.composite
def damaged(draw, original: bytes):
    """``original`` with a few bytes overwritten and maybe truncated, or plain random bytes."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=300))
    data = bytearray(original)
    for _ in range(draw(st.integers(0, 6))):
        position = draw(st.integers(0, min(len(data) - 1, 120)))  # mostly the header
        data[position] = draw(st.integers(0, 255))
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


WAVS = {subtype: small_wav(subtype) for subtype in ("PCM_16", "PCM_U8", "FLOAT")}


@FUZZ
@given(data=st.sampled_from(sorted(WAVS)).flatmap(lambda subtype: damaged(WAVS[subtype])),
       suffix=st.sampled_from([".wav", ".flac", ".mp4"]))
def test_load_audio_on_damaged_bytes(scratch, data, suffix):
    path = scratch / f"damaged{suffix}"
    path.write_bytes(data)
    y = own_error_or(lambda: load_audio(path, sr=16000))
    if y is not None:
        assert y.ndim == 1 and y.size > 0 and y.dtype == np.float32
        assert y.size <= 16000 / NATIVE_SR_RANGE[0] * len(data)  # no blow-up by a damaged header's rate


@FUZZ
@given(data=st.data())
def test_video_info_on_damaged_bytes(scratch, small_mp4, data):
    path = scratch / "damaged.mp4"
    path.write_bytes(data.draw(damaged(small_mp4)))
    info = own_error_or(lambda: video_info(path))
    if info is not None:
        assert info.fps > 0 and info.width > 0 and info.height > 0 and info.n_frames >= 0
    frames = own_error_or(lambda: [(frame.ndim, frame.dtype.name) for frame in iter_grey_frames(path)])
    if frames is not None:
        assert frames and set(frames) == {(2, "uint8")}
