"""Train and test classifiers on every fold of the fused features, report, keep the best model.

The path of one evaluation::

    cache/<dataset>/fused/<method>/<protocol>/<modality>/fold-<k>.npz
        -> classifiers.make_classifier -> fit on the fold's training speakers
        -> predict its test speakers -> metrics.fold_scores -> one result per
           protocol x modality x method x classifier
    eGeMAPS functionals of the store -> the same folds -> the ``egemaps-baseline`` result
    -> report.write_report (reports/<dataset>/metrics.json, report.md, figures/)
    -> the best speaker-independent pipeline refit on all clips -> reports/<dataset>/model.joblib
"""

import inspect
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from extract.errors import EmofuseError
from extract.atomic import atomic_path
from features.store import FeatureStore, store_path

from . import report
from .report import BASELINE_METHOD, MODALITY_ORDER, PROTOCOL_ORDER, RANDOM_PROTOCOL
from .classifiers import CLASSIFIERS, make_classifier, parse_classifiers
from .metrics import fold_scores, summarise_folds

SEED = 0
BASELINE_CLASSIFIER = "logreg"
# Frame-level families the sequence classifier reads, per modality, resampled to the first.
SEQUENCE_FAMILIES = {"audio": ("mfcc", "energy", "zcr", "pitch"), "video": ("hog",)}
MODEL_FILE = "model.joblib"

log = logging.getLogger(__name__)


@dataclass
class Split:
    """One fold's training and test side, as the classifier takes them."""

    fold: int
    X_train: object  # np.ndarray [shape=(n, d)] or list of (t_i, d) sequences
    X_test: object
    y_train: np.ndarray
    y_test: np.ndarray
    speakers_train: np.ndarray
    speakers_test: np.ndarray


def evaluate(dataset, method, classifiers, *, cache_dir=Path("cache"), reports_dir=Path("reports")) -> dict:
    """Cross-validate classifiers on the fused folds of ``method`` and write the report.

    Every protocol whose fused folds exist (``speaker``, ``loso``, ``manifest``, and the
    ``random`` split for comparison) and every modality (audio, video, fused) is evaluated,
    next to the eGeMAPS baseline on the same folds.  Results merge into
    ``<reports_dir>/<dataset>/metrics.json`` (same protocol x modality x method x
    classifier replaced, others kept); ``report.md`` and its figures are redrawn from the
    merged results, and the best speaker-independent pipeline is refit on all clips and
    saved as ``model.joblib``.

    Parameters
    ----------
    dataset : str
        Corpus name, e.g. ``"ravdess"``.
    method : str
        Fusion method directory under ``<cache_dir>/<dataset>/fused/``, e.g. ``"concat"``.
    classifiers : str or list of str
        ``"all"``, ``"light"``, a comma list or a list of names (see ``classify.classifiers``).
    cache_dir, reports_dir : Path

    Returns
    -------
    summary : dict
        ``results`` (the entries of this run), ``metrics``, ``report`` and ``model``
        (paths), ``best`` (the entry the model was refit from).

    Raises
    ------
    EmofuseError
        Unknown classifier, no fused folds for ``method`` or no feature store.
    """
    names = parse_classifiers(classifiers)
    method_dir = Path(cache_dir) / dataset / "fused" / method
    protocols = [p for p in PROTOCOL_ORDER if (method_dir / p / "folds.json").is_file()]
    if not [p for p in protocols if p != RANDOM_PROTOCOL]:
        raise EmofuseError(f"no speaker-independent fused features in {method_dir}: run "
                           f"`make fuse DATASET={dataset} METHOD={method}` first")
    report_dir = Path(reports_dir) / dataset
    with FeatureStore.open(store_path(dataset, cache_dir)) as store:
        results = []
        for protocol in protocols:
            results += evaluate_protocol(store, method_dir / protocol, method, names)
            baseline = evaluate_baseline(store, method_dir / protocol)
            results += [baseline] if baseline else []
        if not results:
            raise EmofuseError(f"none of {', '.join(names)} could run on {method_dir} and the store has no "
                               "eGeMAPS baseline; for bilstm_sa the store needs frame-level sequences")
        metrics = report.merge_metrics(report.read_metrics(report_dir / "metrics.json"), results, dataset)
        draw_fused_space(method_dir / protocols[0], method, report_dir)
        metrics["model"] = save_best_model(store, metrics["results"], Path(cache_dir) / dataset / "fused",
                                           report_dir / MODEL_FILE)
    report.write_metrics(report_dir / "metrics.json", metrics)
    report_path = report.write_report(report_dir, metrics, changed={(r["protocol"], r["method"]) for r in results})
    return {"results": results, "metrics": report_dir / "metrics.json", "report": report_path,
            "model": report_dir / MODEL_FILE if metrics["model"] else None, "best": metrics["model"]}


# ---------------------------------------------------------------------------------------------
# Cross-validation on fused folds
# ---------------------------------------------------------------------------------------------


def load_folds(modality_dir: Path) -> list:
    """The ``fold-<k>.npz`` files of one modality directory, in fold order, as dicts of arrays."""
    paths = sorted(modality_dir.glob("fold-*.npz"), key=lambda p: int(p.stem.split("-")[1]))
    folds = []
    for path in paths:
        with np.load(path, allow_pickle=False) as data:
            folds.append({key: data[key] for key in data.files} | {"fold": int(path.stem.split("-")[1])})
    return folds


def evaluate_protocol(store, protocol_dir: Path, method: str, names: list) -> list:
    """Results of every classifier on every modality of one protocol directory.

    A ``sequence`` classifier reads the clips' frame-level streams from ``store`` (the
    fold's clip ids); a ``blocks`` classifier runs on the fused modality with the fold's
    audio and video outputs side by side.
    """
    folds_file = json.loads((protocol_dir / "folds.json").read_text())
    protocol, warning = folds_file["protocol"], folds_file.get("warning")
    folds = {m: load_folds(protocol_dir / m) for m in MODALITY_ORDER if (protocol_dir / m).is_dir()}
    folds = {m: f for m, f in folds.items() if f}
    results = []
    for modality, modality_folds in folds.items():
        for name in names:
            spec = CLASSIFIERS[name]
            if spec.input == "blocks" and not (modality == "fused" and {"audio", "video"} <= folds.keys()):
                continue
            if spec.input == "sequence" and not _sequence_families(store, modality):
                continue
            splits, blocks = _splits(spec.input, modality_folds, folds, store, modality)
            fold_results = cross_validate(
                lambda: make_classifier(name, random_state=SEED, blocks=blocks), splits, groups=spec.groups)
            results.append(_entry(protocol, modality, method, name, fold_results)
                           | ({"warning": warning} if warning else {}))
            log.info("%s %s %s %s: UA %.3f over %d folds", protocol, modality, method, name,
                     results[-1]["ua"], len(fold_results))
    return results


def evaluate_baseline(store, protocol_dir: Path):
    """The eGeMAPS + logistic-regression baseline on the folds of ``protocol_dir``, or None.

    eGeMAPS v02 functionals (88, openSMILE) with a class-balanced, standardised logistic
    regression, trained on the training clips of each fold and tested on its test clips (those
    with audio, as the fusion stage keeps them): the field's standard reference point.  None
    when the store has no ``egemaps`` family.
    """
    if "egemaps" not in store.families("audio"):
        return None
    folds = json.loads((protocol_dir / "folds.json").read_text())
    X, _ = store.functionals(families=["egemaps"])
    row_of = {clip_id: i for i, clip_id in enumerate(store.clips["clip_id"])}
    labels = store.clips["label"].astype(str).to_numpy()
    speakers = store.clips["speaker"].astype(str).to_numpy()
    has_audio = np.isfinite(X).any(axis=1)
    splits = []
    for fold in folds["folds"]:
        train = [row_of[i] for i in fold["train_ids"] if has_audio[row_of[i]]]
        test = [row_of[i] for i in fold["test_ids"] if has_audio[row_of[i]]]
        splits.append(Split(fold["fold"], X[train], X[test], labels[train], labels[test],
                            speakers[train], speakers[test]))
    fold_results = cross_validate(lambda: make_classifier(BASELINE_CLASSIFIER, random_state=SEED), splits)
    return _entry(folds["protocol"], "audio", BASELINE_METHOD, BASELINE_CLASSIFIER, fold_results)


def cross_validate(build, splits, *, groups: bool = False) -> list:
    """Fit a fresh estimator on each split's training side and score its test side.

    Parameters
    ----------
    build : callable
        ``build()`` -> an unfitted classifier.
    splits : list of Split
    groups : bool
        Pass the training speakers to ``fit(..., groups=)`` (speaker-grouped tuning).

    Returns
    -------
    folds : list of dict
        Per split: ``fold``, ``test_speakers`` and the ``metrics.fold_scores`` figures.
    """
    labels = sorted({*np.concatenate([np.concatenate([s.y_train, s.y_test]) for s in splits]).tolist()})
    results = []
    for split in splits:
        estimator = build()
        estimator.fit(split.X_train, split.y_train, **({"groups": split.speakers_train} if groups else {}))
        y_pred = np.asarray(estimator.predict(split.X_test)).astype(str)
        results.append({"fold": split.fold, "test_speakers": sorted(set(split.speakers_test.tolist())),
                        **fold_scores(split.y_test, y_pred, labels, split.speakers_test)})
    return results


def _entry(protocol, modality, method, classifier, fold_results) -> dict:
    """One ``metrics.json`` result: identity, fold means and spreads, per-fold figures."""
    summary = summarise_folds(fold_results)
    return {"protocol": protocol, "modality": modality, "method": method, "classifier": classifier,
            **summary, "labels": list(fold_results[0]["per_class"]), "n_folds": len(fold_results),
            "folds": fold_results}


def _splits(kind, modality_folds, folds, store, modality):
    """The Splits a classifier of input ``kind`` takes, and its ``blocks`` (or None)."""
    blocks = None
    splits = []
    for k, fold in enumerate(modality_folds):
        if kind == "blocks":
            parts = [(_aligned(folds[m][k], "train", fold["ids_train"]),
                      _aligned(folds[m][k], "test", fold["ids_test"])) for m in ("audio", "video")]
            X_train, X_test = (np.hstack([p[i] for p in parts]) for i in (0, 1))
            blocks = tuple(p[0].shape[1] for p in parts)
        elif kind == "sequence":
            X_train, X_test = (clip_sequences(store, fold[f"ids_{side}"], modality) for side in ("train", "test"))
        else:
            X_train, X_test = fold["X_train"], fold["X_test"]
        splits.append(Split(fold["fold"], X_train, X_test, fold["y_train"].astype(str), fold["y_test"].astype(str),
                            fold["speakers_train"].astype(str), fold["speakers_test"].astype(str)))
    return splits, blocks


def _aligned(fold, side, ids) -> np.ndarray:
    """Rows of ``fold["X_<side>"]`` in the order of ``ids``; NaN rows for clips it lacks."""
    X = fold[f"X_{side}"]
    row_of = {clip_id: i for i, clip_id in enumerate(fold[f"ids_{side}"].tolist())}
    aligned = np.full((len(ids), X.shape[1]), np.nan, dtype=np.float32)
    found = [(i, row_of[clip_id]) for i, clip_id in enumerate(ids.tolist()) if clip_id in row_of]
    if found:
        rows, source = zip(*found)
        aligned[list(rows)] = X[list(source)]
    return aligned


def _sequence_families(store, modality) -> list:
    stored = store.sequence_families()
    modalities = ("audio", "video") if modality == "fused" else (modality,)
    wanted = [f for m in modalities for f in SEQUENCE_FAMILIES[m]]
    return [f for f in wanted if f in stored]


def clip_sequences(store, clip_ids, modality) -> list:
    """Frame-level feature sequences of clips, the families of ``modality`` side by side.

    Parameters
    ----------
    store : FeatureStore
    clip_ids : array-like of str
    modality : {"audio", "video", "fused"}
        Audio: MFCC, energy, ZCR and pitch streams; video: HOG; fused: both.

    Returns
    -------
    sequences : list of np.ndarray [shape=(t_i, d), dtype=float32]
        One per clip, on the frames of its stream with the lowest frame rate (fused: the
        30 fps video); each other stream is averaged over the frames that fall in each of
        those (NaN-aware, so a 100 fps audio stream gives the mean of about 3.3 frames).
        A family the clip lacks (no video) and frames past a stream's end are NaN: the
        network imputes them.
    """
    families = _sequence_families(store, modality)
    streams = [[_stream_or_none(store, str(clip_id), f) for f in families] for clip_id in clip_ids]
    widths = {f: s.values.shape[1] for row in streams for f, s in zip(families, row) if s is not None}
    sequences = []
    for clip_id, row in zip(clip_ids, streams):
        present = [s for s in row if s is not None and len(s.values)]
        if not present:
            raise EmofuseError(f"clip {clip_id} has none of the frame-level families {families}")
        reference = min(present, key=lambda s: s.frame_rate)
        n_frames = len(reference.values)
        sequences.append(np.hstack([
            np.full((n_frames, widths[f]), np.nan, np.float32) if s is None
            else _average_onto(s, n_frames, reference.frame_rate) for f, s in zip(families, row)]))
    return sequences


def _stream_or_none(store, clip_id, family):
    try:
        return store.sequence(clip_id, family)
    except EmofuseError:  # the clip lacks this family (e.g. no face track)
        return None


def _average_onto(stream, n_frames: int, frame_rate: float) -> np.ndarray:
    """Mean of the stream's finite values within each of ``n_frames`` frames at ``frame_rate`` Hz
    (not above the stream's rate) [shape=(n_frames, d)]; NaN where a frame has none."""
    target = np.minimum((np.arange(len(stream.values)) * frame_rate / stream.frame_rate).astype(int), n_frames - 1)
    observed = np.isfinite(stream.values)
    sums = np.zeros((n_frames, stream.values.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, target, np.where(observed, stream.values, 0.0))
    np.add.at(counts, target, observed)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (sums / counts).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The 2-D view of the fused space
# ---------------------------------------------------------------------------------------------


def draw_fused_space(protocol_dir: Path, method: str, report_dir: Path):
    """Plot fold 0's test clips in 2-D (LDA fitted on its training clips), coloured by label.

    Uses the fused modality, or the only modality there is.  Returns the PNG path.
    """
    modality = next(m for m in ("fused", "audio", "video") if (protocol_dir / m / "fold-0.npz").is_file())
    fold = load_folds(protocol_dir / modality)[0]
    y_train = fold["y_train"].astype(str)
    n_features = fold["X_train"].shape[1]
    lda = min(len(set(y_train.tolist())) - 1, n_features) >= 2
    projection = make_pipeline(SimpleImputer(keep_empty_features=True), StandardScaler(),
                               LinearDiscriminantAnalysis(n_components=2) if lda else PCA(min(2, n_features)))
    embedding = projection.fit(fold["X_train"], y_train).transform(fold["X_test"])
    if embedding.shape[1] == 1:  # a one-dimensional fused space: spread it along x only
        embedding = np.c_[embedding, np.zeros(len(embedding))]
    speakers = ", ".join(sorted(set(fold["speakers_test"].astype(str).tolist())))
    title = (f"{method}, {modality}: fold 0 test speakers {speakers}\n"
             f"{'LDA' if lda else 'PCA'} fitted on the training speakers")
    return report.plot_embedding(embedding, fold["y_test"].astype(str), title,
                                 report_dir / "figures" / f"space_{report.slug(method)}.png")


# ---------------------------------------------------------------------------------------------
# The final model: best speaker-independent pipeline refit on all clips
# ---------------------------------------------------------------------------------------------


def save_best_model(store, results: list, fused_root: Path, path: Path):
    """Refit the best pipeline (mean UA, speaker-independent protocol) on all clips and save it.

    Candidates are the results of the ``speaker`` protocol (else the first other
    speaker-independent one), best first, down to the first whose features a new file can
    reproduce (see ``_model_blocks``).  The fold-0 fusion transformer is cloned and refit on
    every clip, the classifier on its output; a classifier without ``predict_proba`` is
    calibrated (sigmoid, speaker-grouped 3-fold).  The file is rewritten only when the best
    pipeline, its scores or the store's configuration changed.

    Returns
    -------
    best : dict or None
        Identity and scores of the saved pipeline (None when no result can be refit).
    """
    present = {r["protocol"] for r in results}
    protocol = next((p for p in PROTOCOL_ORDER if p in present and p != RANDOM_PROTOCOL), None)
    candidates = sorted((r for r in results if r["protocol"] == protocol), reverse=True,
                        key=lambda r: (r["ua"], r["accuracy"], r["method"], r["modality"], r["classifier"]))
    for best in candidates:
        blocks = _model_blocks(store, best, fused_root)
        if blocks is not None:
            break
    else:
        return None
    identity = {key: best[key] for key in ("protocol", "modality", "method", "classifier", "ua", "accuracy")}
    source = identity | {"config_hash": store.config_hash}
    if path.is_file() and joblib.load(path).get("source") == source:
        return identity
    model = fit_final_model(store, best["classifier"], blocks) | {"source": source}
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)
    return identity


def _model_blocks(store, entry: dict, fused_root: Path):
    """(modality, input names, fold-0 fusion transformer) of each input block of ``entry``.

    None when a new file cannot reproduce the inputs: a ``sequence`` classifier (prediction
    has clip-level functionals only), speaker normalisation (``-snorm``: one new clip has no
    speaker statistics), fused folds that are gone, or inputs that are not store functionals
    (STIP words of a per-fold codebook).  The baseline has one block and no transformer.
    """
    spec = CLASSIFIERS[entry["classifier"]]
    if spec.input == "sequence":
        return None
    if entry["method"] == BASELINE_METHOD:
        return [("audio", store.functionals(families=["egemaps"])[1], None)]
    protocol_dir = fused_root / entry["method"] / entry["protocol"]
    if entry["method"].endswith("-snorm") or not protocol_dir.is_dir():
        return None
    stored = set(store.functionals()[1])
    blocks = []
    for modality in ("audio", "video") if spec.input == "blocks" else (entry["modality"],):
        meta = json.loads((protocol_dir / modality / "meta.json").read_text())
        if not set(meta["input_names"]) <= stored:
            return None
        blocks.append((modality, list(meta["input_names"]), joblib.load(protocol_dir / modality / "fold-0.joblib")))
    return blocks


def fit_final_model(store, classifier: str, blocks: list) -> dict:
    """Refit fusion transformer(s) and classifier on every clip that has the model's inputs.

    Parameters
    ----------
    store : FeatureStore
    classifier : str
        Registered classifier name.
    blocks : list of (modality, input_names, transformer or None)
        As ``_model_blocks`` returns; each transformer is cloned and refit.

    Returns
    -------
    model : dict
        ``blocks`` (list of {modality, input_names, transformer}), ``estimator``,
        ``labels``, ``feature_config`` (the store's config), ``config_hash``, ``dataset``,
        ``n_clips``; ``classify.predict`` reads it.
    """
    X_all, all_names = store.functionals()
    column_of = {name: j for j, name in enumerate(all_names)}
    inputs = [X_all[:, [column_of[name] for name in input_names]] for _, input_names, _ in blocks]
    rows = np.flatnonzero(np.isfinite(np.hstack(inputs)).any(axis=1))  # as the fusion stage: clips with the modality
    y = store.clips["label"].astype(str).to_numpy()[rows]
    speakers = store.clips["speaker"].astype(str).to_numpy()[rows]
    fitted, outputs = [], []
    for (modality, input_names, fold_transformer), X in zip(blocks, inputs):
        X, transformer = X[rows], None
        if fold_transformer is not None:
            transformer = clone(fold_transformer)
            _fit_with_groups(transformer, X, y, speakers)
            X = transformer.transform(X)
        fitted.append({"modality": modality, "input_names": input_names, "transformer": transformer})
        outputs.append(np.asarray(X, dtype=np.float32))
    Z = np.hstack(outputs)

    spec = CLASSIFIERS[classifier]
    estimator = make_classifier(classifier, random_state=SEED,
                                blocks=tuple(o.shape[1] for o in outputs) if spec.input == "blocks" else None)
    if not hasattr(estimator, "predict_proba"):
        n_splits = min(3, len(set(speakers.tolist())))
        estimator = CalibratedClassifierCV(estimator, method="sigmoid", ensemble=False,
                                           cv=list(GroupKFold(n_splits=n_splits).split(Z, y, speakers)))
    estimator.fit(Z, y, **({"groups": speakers} if spec.groups else {}))
    return {"dataset": store.dataset, "blocks": fitted, "estimator": estimator,
            "labels": [str(c) for c in estimator.classes_], "feature_config": store.config,
            "config_hash": store.config_hash, "n_clips": int(len(rows))}


def _fit_with_groups(transformer, X, y, groups) -> None:
    """Fit a fusion transformer, passing the speakers to a ``fit`` that takes ``groups``."""
    takes_groups = "groups" in inspect.signature(transformer.fit).parameters
    transformer.fit(X, y, **({"groups": groups} if takes_groups else {}))
