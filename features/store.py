"""The HDF5 feature store: one file per corpus and feature configuration.

Schema (plain h5py can read it; ``FeatureStore`` wraps it)::

    /                          attrs: schema, dataset, config (JSON), config_hash, versions (JSON)
    /corpus                    attrs: root, manifest_sha256 -- the one corpus whose clips the store holds
    /corpus/clip_id            (k,) str     clips of that corpus at the last extraction (absent in shards)
    /clips/<column>            (n,) str     clip table, one dataset per column, rows sorted by clip_id;
                                            ``sources`` (JSON: per modality [path, size, mtime_ns]) and
                                            ``modalities`` (those stored, e.g. "audio video") included
    /functionals/<family>/values  (n, d) float32   per-clip functionals; NaN rows where the clip lacks the modality
    /functionals/<family>/names   (d,) str         column names, e.g. mfcc_3_delta_mean
                               attrs: modality ("audio" or "video")
    /sequences/<family>/names     (d,) str         frame-level column names
    /sequences/<family>/values    (T, d) float32   every stored clip's frames, clip after clip
    /sequences/<family>/clip_id   (m,) str         the clips with this family, in the order of ``values``
    /sequences/<family>/offsets   (m + 1,) int64   clip i's frames are values[offsets[i]:offsets[i + 1]]
    /sequences/<family>/frame_rate  (m,) float64   frames per second of each clip (Hz)
                               attrs: modality, unit
    /failures/<column>         (m,) str     clip_id, stage, path, error

Frame-level data is one ragged matrix per family rather than one dataset per clip: writing a
shard or merging stores is a few large HDF5 writes instead of one small dataset (and its
metadata) per clip and family.

Stored clips that are no longer in the corpus (``/corpus/clip_id``) are *stale*: ``FeatureStore``
leaves them out of ``clips``, ``functionals`` and ``sequence`` and lists them in ``stale``;
:func:`prune_store` removes them from the file.

Crash safety: a run never writes into the store in place.  Finished clips go to small shard
files (same schema) written to a temporary name and renamed; shards are merged into a new
copy of the store that replaces the old one atomically.  A run killed at any moment leaves
the last merged store readable and every finished shard whole, so the next run resumes.
A run that starts from nothing also appends each batch's frames to a :class:`FrameFile`,
which its final merge completes into the store, so that the frames are not copied again.
"""

import contextlib
import json
import logging
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from extract.atomic import atomic_path, move_into_place, partial_path
from extract.errors import EmofuseError

from .stream import Stream

SCHEMA = "emofuse-features/3"
FAILURE_COLUMNS = ["clip_id", "stage", "path", "error"]
_STR = h5py.string_dtype()
COPY_BYTES = 1 << 20
"""The most bytes of features a merge reads at once, and that a store writer buffers per family."""
_NO_CHUNK_CACHE = {"rdcc_nbytes": 0}
"""h5py.File options of a merge: it reads and writes each chunk once, in blocks of many chunks,
so HDF5's chunk cache (1 MiB per open dataset by default) only costs memory (30-40 MiB in a
merge of 2,400 clips)."""
log = logging.getLogger(__name__)


class StoreError(EmofuseError):
    """A feature store that is missing, from another schema, or inconsistent."""


def store_path(dataset: str, cache_dir="cache") -> Path:
    """Where the feature store of ``dataset`` lives: ``<cache_dir>/<dataset>/features.h5``."""
    return Path(cache_dir) / dataset / "features.h5"


def _strings(values) -> np.ndarray:
    return np.array([str(v) for v in values], dtype=object)


def _read_strings(dataset) -> list:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in dataset[()]]


class FeatureStore:
    """Read access to a feature store; open with :meth:`open`, use as a context manager.

    Only the clips of the store's corpus at its last extraction are visible: rows of clips
    that have left the corpus since are *stale*, listed in ``stale`` and left out of
    ``clips``, ``failures``, :meth:`functionals` and :meth:`sequence` (open with
    ``include_stale=True`` to see every row).

    Attributes
    ----------
    clips : pandas.DataFrame
        Clip table; row i is row i of every functionals matrix.
    failures : pandas.DataFrame
        Columns clip_id, stage, path, error.
    config : dict
        The feature configuration that made the store; ``config_hash`` identifies it.
    corpus : dict
        ``root`` and ``manifest_sha256`` of the corpus (see ``extract.corpora.Corpus.identity``)
        and ``clip_ids``, its clips at the last extraction (None in a shard: every row counts).
    stale : list of str
        Stored or failed clips that are not in ``corpus["clip_ids"]``, sorted.
    """

    def __init__(self, handle: h5py.File, include_stale: bool = False):
        self._h5 = handle
        self.path = Path(handle.filename)
        schema = handle.attrs.get("schema")
        if schema != SCHEMA:
            if str(schema).startswith(SCHEMA.split("/")[0]):
                raise StoreError(f"{self.path}: feature store of another emofuse version ({schema}; this one "
                                 f"reads {SCHEMA}); run `make features` again to rebuild it")
            raise StoreError(f"{self.path}: not an emofuse feature store (schema {schema!r})")
        self.dataset = str(handle.attrs["dataset"])
        self.config = json.loads(handle.attrs["config"])
        self.config_hash = str(handle.attrs["config_hash"])
        self.versions = json.loads(handle.attrs["versions"])
        corpus = handle["corpus"]
        self.corpus = {"root": str(corpus.attrs["root"]), "manifest_sha256": str(corpus.attrs["manifest_sha256"]),
                       "clip_ids": _read_strings(corpus["clip_id"]) if "clip_id" in corpus else None}
        clips = pd.DataFrame({c: _read_strings(handle["clips"][c]) for c in handle["clips"].attrs["columns"]})
        failures = pd.DataFrame({c: _read_strings(handle["failures"][c]) for c in FAILURE_COLUMNS})
        current = self.corpus["clip_ids"]
        if current is None:
            self.stale = []
        else:
            current = set(current)
            self.stale = sorted({*clips["clip_id"], *failures["clip_id"]} - current)
        self._hidden = set() if include_stale else set(self.stale)
        if not self._hidden:
            self._rows = slice(None)
        else:
            self._rows = np.flatnonzero(clips["clip_id"].isin(current).to_numpy())
            clips = clips.iloc[self._rows].reset_index(drop=True)
            failures = failures[failures["clip_id"].isin(current)].reset_index(drop=True)
        self.clips, self.failures = clips, failures
        self._sequence_index = {}

    @classmethod
    def open(cls, path, include_stale: bool = False) -> "FeatureStore":
        """Open the store at ``path`` read-only; stale clips are logged and left out unless
        ``include_stale``."""
        path = Path(path)
        if not path.is_file():
            raise StoreError(f"no feature store at {path}; run `make features DATASET=...` first")
        try:
            handle = h5py.File(path, "r")
        except OSError as err:
            raise StoreError(f"{path}: cannot open feature store ({err})") from err
        try:
            store = cls(handle, include_stale)
        except Exception:
            handle.close()
            raise
        if store.stale and not include_stale:
            log.warning("%s: %d stored clips are no longer in the corpus and are left out (%s%s); "
                        "`python -m features prune --dataset %s` removes them", path, len(store.stale),
                        ", ".join(store.stale[:5]), ", ..." if len(store.stale) > 5 else "", store.dataset)
        return store

    def close(self) -> None:
        self._h5.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __len__(self) -> int:
        return len(self.clips)

    def families(self, modality=None) -> list:
        """Names of the per-clip functionals families, optionally of one modality only."""
        return [f for f in self._h5["functionals"] if modality in (None, self.modality_of(f))]

    def sequence_families(self) -> list:
        """Names of the frame-level families."""
        return list(self._h5["sequences"])

    def modality_of(self, family: str) -> str:
        """``"audio"`` or ``"video"``."""
        group = self._h5["functionals"].get(family) or self._h5["sequences"].get(family)
        if group is None:
            raise StoreError(f"{self.path}: no feature family {family!r}")
        return str(group.attrs["modality"])

    def has_modality(self, modality: str) -> bool:
        """True when some clip has finite functionals of ``modality``."""
        return any(np.isfinite(self._values(f)).any(axis=1).any() for f in self.families(modality))

    def _values(self, family: str) -> np.ndarray:
        """The functionals matrix of ``family``, rows of the visible clips only."""
        return self._h5["functionals"][family]["values"][()][self._rows]

    def functionals(self, modality=None, families=None):
        """Per-clip functionals, families side by side.

        Returns
        -------
        X : np.ndarray [shape=(n_clips, d), dtype=float32]
        names : list of str, length d
        """
        chosen = families if families is not None else self.families(modality)
        unknown = [f for f in chosen if f not in self._h5["functionals"]]
        if unknown:
            raise StoreError(f"{self.path}: no feature families {unknown}; it has {self.families()}")
        if not chosen:
            return np.zeros((len(self), 0), np.float32), []
        X = np.concatenate([self._values(f) for f in chosen], axis=1)
        names = [n for f in chosen for n in _read_strings(self._h5["functionals"][f]["names"])]
        return X, names

    def sequence(self, clip_id: str, family: str) -> Stream:
        """The frame-level ``family`` stream of one clip."""
        if clip_id in self._hidden:
            raise StoreError(f"{self.path}: clip {clip_id} is no longer in the corpus")
        index = self._index(family)
        row = index["row"].get(clip_id)
        if row is None:
            raise StoreError(f"{self.path}: clip {clip_id} has no {family} sequence")
        start, stop = index["offsets"][row], index["offsets"][row + 1]
        return Stream(index["values"][start:stop], list(index["names"]), float(index["frame_rate"][row]), index["unit"])

    def sequence_clips(self, family: str) -> list:
        """Ids of the clips with a ``family`` sequence (stale ones included)."""
        return list(self._index(family)["row"])

    def _index(self, family: str) -> dict:
        """Where each clip's frames of ``family`` lie, read once per store."""
        if family not in self._sequence_index:
            group = self._h5["sequences"].get(family)
            if group is None:
                raise StoreError(f"{self.path}: no frame-level family {family!r}; it has {self.sequence_families()}")
            self._sequence_index[family] = {
                "row": {c: i for i, c in enumerate(_read_strings(group["clip_id"]))},
                "offsets": group["offsets"][()], "frame_rate": group["frame_rate"][()],
                "names": _read_strings(group["names"]), "unit": str(group.attrs["unit"]), "values": group["values"],
            }
        return self._sequence_index[family]


def write_store(path, *, dataset: str, config: dict, config_hash: str, versions: dict,
                clips: pd.DataFrame, functionals: dict, sequences: dict, failures: pd.DataFrame,
                corpus=None) -> None:
    """Write a complete store (or shard) atomically.

    Parameters
    ----------
    corpus : dict or None
        ``root``, ``manifest_sha256`` and ``clip_ids`` (None: every row counts) of the corpus;
        None for a shard, whose corpus the merge names.
    clips : DataFrame with n rows (strings)
    functionals : dict family -> (modality, values (n, d), names)
    sequences : dict family -> (modality, names, {clip_id: Stream})
    failures : DataFrame with :data:`FAILURE_COLUMNS`
    """
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h5:
        _write_header(h5, dataset, config, config_hash, versions, clips, failures, corpus)
        _write_functionals(h5, functionals)
        writers = {}
        _append_sequences(h5, writers, sequences)
        for writer in writers.values():
            writer.close()


def _append_sequences(h5, writers: dict, sequences: dict) -> None:
    """Append ``sequences`` (family -> (modality, names, {clip_id: Stream})) to ``h5`` through
    ``writers`` (family -> :class:`_SequenceWriter`, one added as a family first appears)."""
    for family, (modality, names, streams) in sequences.items():
        units = {stream.unit for stream in streams.values()} | ({writers[family].unit} if family in writers else set())
        if len(units) > 1:
            raise ValueError(f"{family}: clips of one family with different units {sorted(units)}")
        if family not in writers:
            writers[family] = _SequenceWriter(h5, family, modality, names, units.pop() if units else "")
        for clip_id, stream in streams.items():
            writers[family].append([clip_id], [len(stream.values)], [stream.frame_rate], stream.values)


class FrameFile:
    """The frame-level data of a new store, appended batch by batch while a run computes.

    A run that starts with no store and no shards writes each batch twice: as a shard (what
    a killed run resumes from) and here, so that its final merge (``merge_stores(...,
    frames=...)``) writes the clip table and functionals around these frames and moves the
    file into place instead of copying every clip's frames once more with the cores idle
    (720 real speech clips: 215 of the store's 222 MB).  Until then the file has a partial
    name beside the store (``.<stem>.frames-<pid>.partial<suffix>``), which the next run
    removes if this one is killed.
    """

    def __init__(self, target):
        target = Path(target)
        self.path = partial_path(target, "frames-")
        self._h5 = h5py.File(self.path, "w", **_NO_CHUNK_CACHE)
        self._writers = {}

    def append(self, sequences: dict) -> None:
        """Add one batch: family -> (modality, names, {clip_id: Stream}), as :func:`write_store` takes it."""
        _append_sequences(self._h5, self._writers, sequences)

    def clip_ids(self) -> dict:
        """family -> ids of the clips appended, in order."""
        return {family: list(writer.clip_ids) for family, writer in self._writers.items()}

    @contextlib.contextmanager
    def completed_as(self, target):
        """Yield the open file for the rest of a store; then close it, fsync it and move it to
        ``target``.  On an error it is removed, as by :meth:`discard`."""
        try:
            yield self._h5
            for writer in self._writers.values():
                writer.close()
            self._h5.close()
            move_into_place(self.path, target)
        finally:
            self.discard()

    def discard(self) -> None:
        """Close and remove the file (nothing once it has been moved into place)."""
        self._h5.close()
        self.path.unlink(missing_ok=True)


def _write_header(h5, dataset, config, config_hash, versions, clips, failures, corpus):
    h5.attrs.update(schema=SCHEMA, dataset=dataset, config=json.dumps(config, sort_keys=True),
                    config_hash=config_hash, versions=json.dumps(versions, sort_keys=True))
    corpus = corpus or {}
    group = h5.create_group("corpus")
    group.attrs.update(root=corpus.get("root") or "", manifest_sha256=corpus.get("manifest_sha256") or "")
    if corpus.get("clip_ids") is not None:
        group.create_dataset("clip_id", data=_strings(sorted(corpus["clip_ids"])), dtype=_STR)
    group = h5.create_group("clips")
    group.attrs["columns"] = list(clips.columns)
    for column in clips.columns:
        group.create_dataset(column, data=_strings(clips[column]), dtype=_STR)
    group = h5.create_group("failures")
    for column in FAILURE_COLUMNS:
        group.create_dataset(column, data=_strings(failures[column]) if len(failures) else np.array([], object),
                             dtype=_STR)
    h5.create_group("functionals")
    h5.require_group("sequences")  # a FrameFile holds its sequences already


def _write_functionals(h5, functionals):
    """``functionals``: family -> (modality, values (n, d), names)."""
    for family, (modality, values, names) in functionals.items():
        group = h5.create_group(f"functionals/{family}")
        group.attrs["modality"] = modality
        group.create_dataset("values", data=np.asarray(values, np.float32))
        group.create_dataset("names", data=_strings(names), dtype=_STR)


class _SequenceWriter:
    """Writes one family's ragged frame matrix (see the module schema), buffering appended
    frames so that HDF5 sees a few large writes."""

    BUFFER_BYTES = COPY_BYTES

    def __init__(self, h5, family, modality, names, unit):
        self._group = h5.create_group(f"sequences/{family}")
        self._group.attrs.update(modality=modality, unit=unit)
        self.unit = unit
        self._group.create_dataset("names", data=_strings(names), dtype=_STR)
        width = len(names)
        # Uncompressed: lzf saved 8 % of the space of real frame-level features and cost most of
        # the time of writing and merging them.
        self._values = self._group.create_dataset(
            "values", shape=(0, width), maxshape=(None, width), dtype=np.float32,
            chunks=(max(1, (64 << 10) // (4 * max(width, 1))), width))
        self.clip_ids, self._lengths, self._frame_rates, self._pending = [], [], [], []
        self._pending_bytes = 0

    def append(self, clip_ids, lengths, frame_rates, values) -> None:
        """Add clips whose frames, clip after clip, are the rows of ``values`` (sum(lengths), d)."""
        self.clip_ids += list(clip_ids)
        self._lengths += [int(n) for n in lengths]
        self._frame_rates += [float(r) for r in frame_rates]
        self._pending.append(np.asarray(values, np.float32))
        self._pending_bytes += self._pending[-1].nbytes
        if self._pending_bytes >= self.BUFFER_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            block = np.concatenate(self._pending)
            start = self._values.shape[0]
            self._values.resize(start + len(block), axis=0)
            self._values[start:] = block
        self._pending, self._pending_bytes = [], 0

    def close(self) -> None:
        self._flush()
        self._group.create_dataset("clip_id", data=_strings(self.clip_ids), dtype=_STR)
        self._group.create_dataset("offsets", data=np.concatenate([[0], np.cumsum(self._lengths, dtype=np.int64)]))
        self._group.create_dataset("frame_rate", data=np.asarray(self._frame_rates, np.float64))


def merge_stores(target, sources, *, corpus=None, keep=None, frames=None) -> None:
    """Merge the stores ``sources`` (paths of one config, oldest first) into ``target``, atomically.

    For each clip the newest source that mentions it (stored or failed) wins, so a clip that
    was retried keeps only its latest outcome.  Clips are sorted by clip_id.  Functionals and
    frame-level data are copied HDF5-to-HDF5 in blocks of at most :data:`COPY_BYTES`, one
    source file open at a time, and the clip table one column at a time, so that besides its
    index of clip ids a merge holds no more in memory for many clips than for a few.

    Parameters
    ----------
    corpus : dict or None
        The corpus record to write (see :func:`write_store`); None: the newest source's.
    keep : set of str or None
        Clip ids to keep (stored rows and failures); None: all.
    frames : FrameFile or None
        The frames of exactly the merged clips, appended while they were computed: the merge
        completes that file into ``target`` instead of copying the sources' frames.

    Raises
    ------
    StoreError
        Sources of different configurations or corpora, or ``frames`` that are not the frames
        of the merged clips.
    """
    # Each source's clip table, failures and families, one file open at a time: HDF5 keeps a
    # metadata cache per open file (16 shards open at once held 20 MiB more).
    stores, functionals, sequences, framed = [], {}, {}, []
    for source in sources:
        with h5py.File(source, "r", **_NO_CHUNK_CACHE) as handle:
            store = FeatureStore(handle, include_stale=True)
            for family in [f for f in store.families() if f not in functionals]:  # the first source's names
                group = handle["functionals"][family]
                functionals[family] = (str(group.attrs["modality"]), _read_strings(group["names"]))
            for family in [f for f in store.sequence_families() if f not in sequences]:
                group = handle["sequences"][family]
                sequences[family] = (str(group.attrs["modality"]), _read_strings(group["names"]),
                                     str(group.attrs["unit"]))
            if frames is not None:
                framed.append({f: set(store.sequence_clips(f)) for f in store.sequence_families()})
        stores.append(store)
    first = stores[0]
    if any(s.config_hash != first.config_hash for s in stores):
        raise StoreError(f"cannot merge stores of different configurations into {target}")
    roots = {s.corpus["root"] for s in stores} - {""}
    if corpus is None and len(roots) > 1:
        raise StoreError(f"cannot merge stores of different corpora into {target}: {', '.join(sorted(roots))}")
    corpus = corpus or next((s.corpus for s in reversed(stores) if s.corpus["root"]), None)
    # 1. The newest source mentioning each clip decides its row and its failures.
    latest, owner = {}, {}
    for i, store in enumerate(stores):
        for clip_id in store.failures["clip_id"]:
            latest[clip_id] = i
        for row, clip_id in enumerate(store.clips["clip_id"]):
            latest[clip_id] = i
            owner[clip_id] = (i, row)
    if keep is not None:
        latest = {c: i for c, i in latest.items() if c in keep}
    order = sorted(c for c, (i, _) in owner.items() if i == latest.get(c))
    rows = _rows_by_source(order, owner)
    if frames is not None:
        appended = frames.clip_ids()
        for family in {*sequences, *appended}:
            if sorted(appended.get(family, [])) != [c for c in order if c in framed[owner[c][0]].get(family, ())]:
                raise StoreError(f"{target}: {frames.path} does not hold the {family} frames of exactly the "
                                 "merged clips")
    # 2. The clip table, column by column; failures of each clip from its newest source only.
    clips = pd.DataFrame({column: _merged_column(stores, rows, column, len(order))
                          for column in dict.fromkeys(c for s in stores for c in s.clips.columns)})
    failures = pd.concat(
        [s.failures[s.failures["clip_id"].map(latest) == i] for i, s in enumerate(stores)],
        ignore_index=True,
    ).drop_duplicates().sort_values(["clip_id", "stage"], kind="stable")
    with frames.completed_as(target) if frames is not None else _new_store_file(target) as h5:
        _write_header(h5, first.dataset, first.config, first.config_hash, first.versions, clips, failures, corpus)
        del clips, failures
        # 3. Functionals (NaN where the owner lacks the family) and 4. frame-level data (unless
        # ``frames`` holds them), copied from each clip's owner, one source file open at a time
        # (HDF5 keeps a metadata cache per open file that grows with the objects read).
        matrices = {}
        for family, (modality, names) in functionals.items():
            group = h5.create_group(f"functionals/{family}")
            group.attrs["modality"] = modality
            group.create_dataset("names", data=_strings(names), dtype=_STR)
            matrices[family] = group.create_dataset("values", shape=(len(order), len(names)), dtype=np.float32,
                                                    fillvalue=np.nan)
        writers = {} if frames is not None else \
            {family: _SequenceWriter(h5, family, *spec) for family, spec in sequences.items()}
        for i, (source_rows, target_rows) in rows.items():
            with h5py.File(sources[i], "r", **_NO_CHUNK_CACHE) as handle:
                for family, matrix in matrices.items():
                    if family in handle["functionals"]:
                        _copy_rows(handle["functionals"][family]["values"], source_rows, matrix, target_rows)
                owned = {order[j] for j in target_rows}
                for family, writer in writers.items():
                    if family in handle["sequences"]:
                        _copy_sequences(handle["sequences"][family], owned, writer)
        for writer in writers.values():
            writer.close()


@contextlib.contextmanager
def _new_store_file(target):
    """An empty HDF5 file that becomes ``target`` atomically when the block succeeds."""
    with atomic_path(target) as tmp, h5py.File(tmp, "w", **_NO_CHUNK_CACHE) as h5:
        yield h5


def _rows_by_source(order: list, owner: dict) -> dict:
    """source index -> (its rows, increasing; their rows in the target), for the clips in
    ``order`` (the target's); ``owner``: clip_id -> (source index, row).  Sources come in the
    order of their first clip in ``order``."""
    rows = {}
    for j, clip_id in enumerate(order):
        i, row = owner[clip_id]
        rows.setdefault(i, []).append((row, j))
    return {i: tuple(np.array(sorted(pairs), np.int64).reshape(-1, 2).T) for i, pairs in rows.items()}


def _merged_column(stores: list, rows: dict, column: str, n: int) -> np.ndarray:
    """One column of the merged clip table (``""`` where a clip's owner lacks the column)."""
    merged = np.full(n, "", dtype=object)
    for i, (source_rows, target_rows) in rows.items():
        if column in stores[i].clips.columns:
            merged[target_rows] = stores[i].clips[column].to_numpy(dtype=object)[source_rows]
    return merged


def _copy_rows(source, source_rows: np.ndarray, target, target_rows: np.ndarray) -> None:
    """``target[target_rows] = source[source_rows]`` for HDF5 datasets (``source_rows``
    increasing), in reads of at most :data:`COPY_BYTES`, each written as one selection of
    rows (a shard's clips lie scattered in the sorted target: one write per run of
    consecutive rows took 17 writes per shard and family, a third of a merge's CPU)."""
    rows_per_read = max(1, COPY_BYTES // (source.dtype.itemsize * max(source.shape[1], 1)))
    k = 0
    while k < len(source_rows):
        # The source rows of this block lie within one read's span.
        stop = k + int(np.searchsorted(source_rows[k:], source_rows[k] + rows_per_read))
        start_row = source_rows[k]
        block = source[start_row:source_rows[stop - 1] + 1][source_rows[k:stop] - start_row]
        targets = target_rows[k:stop]
        ascending = np.argsort(targets)  # h5py selects rows in increasing order
        target[targets[ascending]] = block[ascending]
        k = stop


def _copy_sequences(source, clip_ids: set, writer: _SequenceWriter) -> None:
    """Append the frames of the source family group's clips in ``clip_ids`` to ``writer``."""
    ids = _read_strings(source["clip_id"])
    offsets, frame_rates, values = source["offsets"][()], source["frame_rate"][()], source["values"]
    # Consecutive rows are read as one slice of at most the writer's buffer (a clip longer
    # than that alone), so memory stays bounded however large the source.
    frames_per_read = max(1, writer.BUFFER_BYTES // (4 * max(values.shape[1], 1)))
    runs = []
    for i in (i for i, clip_id in enumerate(ids) if clip_id in clip_ids):
        if runs and i == runs[-1][-1] + 1 and offsets[i + 1] - offsets[runs[-1][0]] <= frames_per_read:
            runs[-1].append(i)
        else:
            runs.append([i])
    for run in runs:
        first, last = run[0], run[-1]
        writer.append([ids[i] for i in run], np.diff(offsets[first:last + 2]), frame_rates[first:last + 1],
                      values[offsets[first]:offsets[last + 1]])


def prune_store(path) -> list:
    """Remove the stale clips (no longer in the corpus) from the store at ``path``, atomically.

    Returns
    -------
    removed : list of str
        Their clip ids.
    """
    with FeatureStore.open(path, include_stale=True) as store:
        removed, current = store.stale, store.corpus["clip_ids"]
    if removed:
        merge_stores(path, [path], keep=set(current))
    return removed


def check_store(path, *, expected_ids=None, nan_allowed=()) -> list:
    """Verify a store; return a list of problems (empty when it is sound).

    Checks the schema, that clip ids are unique and sorted, that every matrix has one row per
    clip, that every expected clip is stored or listed in failures, that no functionals are
    NaN outside ``nan_allowed`` families except whole rows of a modality the clip lacks.
    """
    try:
        store = FeatureStore.open(path, include_stale=True)
    except StoreError as err:
        return [str(err)]
    problems = []
    with store:
        ids = list(store.clips["clip_id"])
        if len(set(ids)) != len(ids):
            duplicates = sorted({c for c in ids if ids.count(c) > 1})
            problems.append(f"duplicate clip ids: {', '.join(duplicates[:10])}")
        if ids != sorted(ids):
            problems.append("clips are not sorted by clip_id")
        if expected_ids is not None:
            missing = sorted(set(expected_ids) - set(ids) - set(store.failures["clip_id"]))
            if missing:
                problems.append(f"{len(missing)} clips neither stored nor failed: {', '.join(missing[:10])}")
        for family in store.families():
            values, _ = store.functionals(families=[family])
            if values.shape[0] != len(ids):
                problems.append(f"{family}: {values.shape[0]} rows for {len(ids)} clips")
                continue
            finite = np.isfinite(values)
            partial_rows = ~finite.all(axis=1) & finite.any(axis=1)
            if family not in nan_allowed and partial_rows.any():
                problems.append(f"{family}: non-finite values in {int(partial_rows.sum())} clips")
        for family in store.sequence_families():
            group = store._h5["sequences"][family]
            offsets = group["offsets"][()]
            if len(offsets) != len(group["clip_id"]) + 1 or offsets[-1] != len(group["values"]) \
                    or (np.diff(offsets) < 0).any():
                problems.append(f"{family}: frame offsets do not match the stored frames")
            if not set(store.sequence_clips(family)) <= set(ids):
                problems.append(f"{family}: sequences of clips not in the clip table")
    return problems
