"""Fuse a feature store's functionals fold by fold and write what the classify stage reads.

The path of one run::

    store -> protocol.make_folds -> per modality (audio, video, text, fused) and fold:
        training rows only: [STIP bag of words] -> [speaker adaptation] -> method pipeline.fit
        -> transform both sides -> <out>/<modality>/fold-<k>.npz, fold-<k>.joblib
    -> <out>/<modality>/meta.json (with the stamp that lets a re-run reuse the output)

with ``<out> = <out_root>/<dataset>/fused/<method>[-snorm|-enrol<K>]/<protocol>``
(``fusion.speaker_norm.method_dir_name``).
"""

import hashlib
import json
import logging
from pathlib import Path

import joblib
import numpy as np
from joblib import Parallel, delayed
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from extract.atomic import atomic_path
from extract.errors import EmofuseError
from features.parallel import keep_freed_memory
from features.stip import DESCRIPTOR_NAMES

from .methods import build_pipeline, parse_method
from .protocol import make_folds, shared_speakers, split_warning
from .speaker_norm import ADAPTIVE_LABEL, adapt, method_dir_name, parse_speaker_norm
from .stip_words import StipBagOfWords

log = logging.getLogger(__name__)

MODALITIES = ("audio", "video", "text")
"""A store's modalities, in column order; ``fused`` is those a store has, side by side."""
STIP_FAMILY = "stip"
STIP_POINTS = "stip_points"


def fuse(store, method, *, protocol="speaker", speaker_norm="none", out_root=Path("cache"), seed=0,
         jobs=1, progress=True, **params) -> Path:
    """Write the fused features of every fold of ``protocol`` for each modality of ``store``.

    Parameters
    ----------
    store : features.store.FeatureStore
        An open feature store.
    method : str
        ``concat``, ``mfa``, ``zebra`` or a ``+`` chain such as ``zebra+mfa``.
    protocol : {"speaker", "loso", "random", "manifest"}
        See ``fusion.protocol.make_folds``.
    speaker_norm : {"none", "all", "enrol:K"} or bool
        Speaker adaptation (``fusion.speaker_norm``): z-score each speaker with its own
        statistics first, test speakers with all their clips (``all``, True; output in
        ``<method>-snorm``) or with ``K`` enrolment clips that are then left out of the test
        side (``enrol:K``; ``<method>-enrol<K>``).  A speaker on both sides of a fold uses
        its training clips.
    out_root : Path
        Cache root; output under ``<out_root>/<dataset>/fused/``.
    seed : int
        Seed of the folds, the enrolment draw and every randomised step.
    jobs : int
        Worker processes fitting folds side by side (joblib) where a fold's fit is costly (a step
        after ``concat``: MFA, zebra, stacking; or a STIP codebook); the folds of plain
        concatenation, a fraction of a second each, run in this process, since starting the
        workers costs more (LOSO on the 12 real actors: 2.9-3.3 s in one process against
        4.2-4.4 s with two workers).  The output does not depend on it.
    progress : bool
        Show a progress bar over modalities x folds.
    **params
        Method parameters (see ``fusion.methods.build_pipeline``), plus ``stip_bow=n_words``
        to replace the fixed ``stip`` encoding by a bag of ``n_words`` visual words whose
        codebook is learnt on each fold's training clips (needs video).

    Returns
    -------
    out_dir : Path
        ``<out_root>/<dataset>/fused/<method dir>/<protocol>``.  Per modality in
        {audio, video, text, fused} the store supports (fused: all of the store's
        modalities side by side, when it has two or more), ``<modality>/fold-<k>.npz`` (X_train,
        X_test float32; y_*, ids_*, speakers_* str), ``fold-<k>.joblib`` (the fitted
        pipeline) and ``meta.json``; ``folds.json`` beside them, with ``speaker_independent``
        and, for a split that is not (random, or a manifest sharing speakers), ``warning``;
        adaptive output carries ``adaptation`` (``fusion.speaker_norm.ADAPTIVE_LABEL``).  Clips without any feature
        of a modality are left out of that modality's folds.  ``meta.json`` holds the
        settings (``stip_bow`` None in a modality without video), ``params`` (every step's
        parameters), ``input_names`` (the store's column names, ``stip_word_<i>`` after the
        video columns), per fold ``output_names`` and, for zebra,
        ``selected_features`` (``<block>__<input name>``), and the ``stamp``: output whose
        stamp matches (store config hash and clip table, method, protocol, options, params)
        is reused, not recomputed.

    Raises
    ------
    EmofuseError
        Unknown method or parameter, no video for ``stip_bow``, a store without features,
        or a fold whose training side lacks a class.
    """
    steps = parse_method(method)
    stip_words = params.pop("stip_bow", None)
    jobs = jobs if steps != ["concat"] or stip_words else 1
    modalities = store_modalities(store)
    if not modalities:
        raise EmofuseError(f"feature store of {store.dataset!r} has no audio, video or text functionals")
    if stip_words and "video" not in modalities:
        raise EmofuseError(f"stip_bow needs video features, but the {store.dataset!r} store has none")
    if len(modalities) >= 2:
        modalities.append("fused")
    pipeline = build_pipeline(method, None, seed=seed, **params)  # fail on bad parameters before any work
    speaker_norm = parse_speaker_norm(speaker_norm)
    out_dir = Path(out_root) / store.dataset / "fused" / method_dir_name(method, speaker_norm) / protocol
    settings = {
        "dataset": store.dataset, "method": method, "protocol": protocol, "speaker_norm": speaker_norm,
        "seed": seed, "stip_bow": stip_words, "requested_params": params, "store_config_hash": store.config_hash,
        "pipeline": repr(pipeline),  # the effective parameters, defaults included
    }
    stamp = _stamp(settings, store.clips)
    if all(_is_complete(out_dir / m, stamp) for m in modalities) and (out_dir / "folds.json").is_file():
        log.info("fused features in %s are up to date (stamp %s); reusing them", out_dir, stamp)
        return out_dir

    folds = make_folds(store.clips, protocol, seed=seed)
    clips = {key: store.clips[column].to_numpy(dtype=str) for key, column in
             (("ids", "clip_id"), ("labels", "label"), ("speakers", "speaker"))}
    skip = [STIP_FAMILY] if stip_words else []  # the words replace the fixed encoding
    inputs = {m: modality_matrix(store, m, skip=skip) for m in modalities}
    for modality, (X, _, _) in inputs.items():
        _check_training_classes(folds, clips, np.isfinite(X).any(axis=1), modality)
    points = stip_points(store) if stip_words else None
    shared = shared_speakers(folds, store.clips)
    warning = {"warning": split_warning(protocol, shared)} if split_warning(protocol, shared) else {}
    if warning:
        log.warning("%s", warning["warning"])
    labels = {"speaker_independent": not shared}
    if speaker_norm != "none":
        labels["adaptation"] = ADAPTIVE_LABEL
        log.info("%s, %s", ADAPTIVE_LABEL, speaker_norm)
    _write_json(out_dir / "folds.json", {"protocol": protocol, **warning, **labels,
                                         "folds": [f.to_dict() for f in folds]})
    with tqdm(total=len(inputs) * len(folds), disable=not progress, unit="fold",
              desc=f"fuse {method_dir_name(method, speaker_norm)} {protocol}") as bar:
        for modality, matrix in inputs.items():
            words = (stip_words, points) if stip_words and "video" in (b[0] for b in matrix[2]) else None
            meta = _fuse_modality(matrix, clips, folds, words, method, params, speaker_norm, seed,
                                  out_dir / modality, jobs, bar)
            header = {**settings, **warning, **labels, "modality": modality, "stamp": stamp,
                      "stip_bow": stip_words if words else None}  # a modality without video has no words
            _write_json(out_dir / modality / "meta.json", header | meta)
            log.info("%s: %d folds of %s features written to %s", method, len(folds), modality, out_dir / modality)
    log.info("fused %s x %d folds (%s) into %s", "/".join(inputs), len(folds), protocol, out_dir)
    return out_dir


def _fuse_modality(matrix, clips, folds, words, method, params, speaker_norm, seed, out_dir, jobs, bar):
    """Fit and apply the method on every fold of one modality, ``jobs`` folds at a time; return
    its meta.json entries.

    ``words`` is None or (number of words, ``stip_points`` of the store): a STIP codebook is
    then fitted on each fold's training clips; ``bar`` advances by one per fold.
    """
    for stale in [out_dir / "meta.json", *out_dir.glob("fold-*")]:
        stale.unlink(missing_ok=True)
    inputs = with_stip_words(matrix, np.zeros((len(clips["ids"]), words[0]))) if words else matrix
    present = np.isfinite(matrix[0]).any(axis=1)
    meta = {"input_names": inputs[1], "output_names": [], "n_clips_without_modality": int((~present).sum())}
    tasks = (delayed(_fuse_fold)(matrix, inputs, present, clips, fold, words, method, params, speaker_norm, seed,
                                 out_dir) for fold in folds)
    for fold_meta in Parallel(n_jobs=jobs, return_as="generator")(tasks):
        meta["params"] = fold_meta.pop("params")
        for key, value in fold_meta.items():
            meta.setdefault(key, []).append(value)
        bar.update()
    return meta


def _fuse_fold(matrix, inputs, present, clips, fold, words, method, params, speaker_norm, seed, out_dir) -> dict:
    """Fit the method on one fold's training side, write its fused folds and fitted pipeline;
    return the fold's meta.json entries (``params``, ``output_names``, [``selected_features``,
    ``zebra``], [``mfa_chosen``]).

    ``inputs`` is (X, input_names, blocks): ``matrix`` (``modality_matrix``), with zero
    STIP-word columns when ``words``; ``present`` marks the clips with the modality.

    Every fit runs on one BLAS/OpenMP thread, as in the classify stage: on a few hundred clips
    threads inside a fit cost more than they save, and on a busy machine far more (a zebra fit
    on the synthetic demo's audio: 7.6 s of CPU on one thread, over 300 s unfinished on two),
    and freed memory is kept for the next fit (``features.parallel.keep_freed_memory``).
    """
    ids, labels, speakers = clips["ids"], clips["labels"], clips["speakers"]
    X, input_names, blocks = inputs
    train = np.isin(ids, fold.train_ids) & present
    test = np.isin(ids, fold.test_ids) & present
    keep_freed_memory()
    with threadpool_limits(1):
        if words:  # 1. STIP words from a codebook of this fold's training clips
            encoder = fit_stip_words(words[1], train, words[0], seed)
            X = with_stip_words(matrix, stip_histograms(encoder, words[1], len(ids)))[0]
            _dump(encoder, out_dir / f"fold-{fold.fold}.stip_bow.joblib")
        # 2. Speaker adaptation: training speakers with their own clips, test speakers with theirs
        # (all, or K enrolment clips that then leave the test side).
        # The enrolment draw takes all the fold's test clips, so it is the same in every modality.
        X, scored = adapt(X, ids, speakers, train, np.isin(ids, fold.test_ids), speaker_norm, seed=seed)
        test &= scored
        # 3. The method, fitted on the training side only.
        pipeline = build_pipeline(method, blocks, input_names=input_names, seed=seed, **params)
        pipeline.fit(X[train], labels[train], groups=speakers[train])
        output_names = [str(n) for n in pipeline.get_feature_names_out(input_names)]
        arrays = {}
        for side, rows in (("train", train), ("test", test)):
            arrays |= {f"X_{side}": _transform(pipeline, X[rows], len(output_names)),
                       f"y_{side}": labels[rows], f"ids_{side}": ids[rows], f"speakers_{side}": speakers[rows]}
    _dump_npz(out_dir / f"fold-{fold.fold}.npz", arrays)
    _dump(pipeline, out_dir / f"fold-{fold.fold}.joblib")
    meta = {"params": {name: step.get_params(deep=False) for name, step in pipeline.steps},
            "output_names": output_names}
    if "zebra" in pipeline.named_steps:
        selector = pipeline[: [name for name, _ in pipeline.steps].index("zebra") + 1]
        zebra = pipeline.named_steps["zebra"]
        meta["selected_features"] = [str(n) for n in selector.get_feature_names_out(input_names)]
        meta["zebra"] = {"selected_groups": [str(g) for g in zebra.selected_groups_],
                         "n_evaluations": int(zebra.n_evaluations_), "inner_scores": zebra.reference_scores_}
    if "mfa" in pipeline.named_steps:  # the hyper-parameters chosen inside this fold's training speakers
        meta["mfa_chosen"] = pipeline.named_steps["mfa"].best_params_
    return meta


def _check_training_classes(folds, clips, present, modality):
    """Refuse a fold whose training side lacks a class of the corpus."""
    labels = clips["labels"]
    for fold in folds:
        train = np.isin(clips["ids"], fold.train_ids) & present
        missing = sorted(set(labels[present]) - set(labels[train]))
        if missing:
            raise EmofuseError(
                f"fold {fold.fold} (test speakers {', '.join(fold.test_speakers)}): class(es) "
                f"{', '.join(missing)} have no {modality} training clips; use another protocol"
            )


def store_modalities(store) -> list:
    """The modalities of ``MODALITIES`` of which some clip of ``store`` has functionals."""
    return [m for m in MODALITIES if store.has_modality(m)]


def modality_matrix(store, modality, skip=()):
    """The input of a modality: its functionals (fused: those of every modality the store
    has, in ``MODALITIES`` order), without the families in ``skip``.

    Returns
    -------
    X : np.ndarray [shape=(n_clips, d), dtype=float64]
        NaN where a clip lacks a value.
    names : list of str
        Store column names, length d.
    blocks : list of [str, int]
        Modality and column count of each block, for ``BlockConcat``.
    """
    parts = store_modalities(store) if modality == "fused" else [modality]
    matrices, names, blocks = [], [], []
    for name in parts:
        X, block_names = store.functionals(families=[f for f in store.families(name) if f not in skip])
        matrices.append(X)
        names += block_names
        blocks.append([name, X.shape[1]])
    return np.hstack(matrices).astype(np.float64), names, blocks


def stip_points(store) -> dict:
    """The STIP descriptors of each clip with video: row index -> [shape=(n_points, 48)]."""
    ids = store.clips["clip_id"].to_numpy(str)
    video = np.isfinite(store.functionals(modality="video")[0]).any(axis=1)
    points = {}
    for i in np.flatnonzero(video):
        stream = store.sequence(ids[i], STIP_POINTS)
        points[int(i)] = stream.values[:, [stream.names.index(n) for n in DESCRIPTOR_NAMES]]
    return points


def fit_stip_words(points: dict, rows, n_words: int, seed: int) -> StipBagOfWords:
    """A codebook of ``n_words`` STIP words fitted on the points of the clips in ``rows``
    [shape=(n_clips,), bool] (training clips only)."""
    return StipBagOfWords(n_words=n_words, random_state=seed).fit([points[i] for i in np.flatnonzero(rows)
                                                                   if i in points])


def stip_histograms(encoder, points: dict, n_clips: int) -> np.ndarray:
    """Word histograms of every clip [shape=(n_clips, n_words)]; NaN rows for clips without video."""
    histograms = np.full((n_clips, encoder.n_words), np.nan)
    if points:
        histograms[list(points)] = encoder.transform(list(points.values()))
    return histograms


def with_stip_words(matrix, histograms):
    """``(X, names, blocks)`` of ``modality_matrix`` with STIP word histograms
    [shape=(n_clips, n_words)] appended to the video block (named ``stip_word_<i>``)."""
    X, names, blocks = matrix
    video = [b[0] for b in blocks].index("video")
    end = sum(n for _, n in blocks[:video + 1])
    words = [f"stip_word_{i}" for i in range(histograms.shape[1])]
    blocks = [[m, n + len(words) if k == video else n] for k, (m, n) in enumerate(blocks)]
    return np.hstack([X[:, :end], histograms, X[:, end:]]), names[:end] + words + names[end:], blocks


def _transform(pipeline, X, n_out):
    """``pipeline.transform(X)`` as float32; an empty side stays empty."""
    return (pipeline.transform(X) if len(X) else np.empty((0, n_out))).astype(np.float32)


def _stamp(settings, clips):
    """Digest of everything the output depends on: settings and the clip table (with each
    clip's source files, so a re-extracted clip invalidates the fused output)."""
    columns = [c for c in ("clip_id", "speaker", "label", "sources") if c in clips]
    table = clips[columns].astype(str).to_csv(index=False)
    text = json.dumps(settings, sort_keys=True, default=_jsonable) + table
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _is_complete(modality_dir, stamp):
    meta_path = modality_dir / "meta.json"
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    n_folds = len(meta.get("output_names", []))
    return meta.get("stamp") == stamp and all((modality_dir / f"fold-{k}.npz").is_file() for k in range(n_folds))


def _jsonable(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    return repr(value)


def _write_json(path, data):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=_jsonable))


def _dump_npz(path, arrays):
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)


def _dump(obj, path):
    with atomic_path(path) as tmp:
        joblib.dump(obj, tmp)
