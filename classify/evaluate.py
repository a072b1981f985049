"""Train and test classifiers on every fold of the fused features, select, report, keep a model.

The path of one evaluation::

    cache/<dataset>/fused/<method dir>/<protocol>/<modality>/fold-<k>.npz
        -> classifiers.make_classifier -> fit on the fold's training speakers
        -> predict its test speakers -> metrics.fold_scores -> one result per
           protocol x modality x method x classifier (the full table)
    eGeMAPS (and ComParE, where the store has it) functionals of the store -> the same folds
        -> the ``egemaps-baseline`` (``compare-baseline``) result
    every fused method of the protocol x the classifiers -> select.nested_selection
        -> the ``selected`` figure (the headline; speaker-adaptive methods separately)
    -> report.write_report (reports/<dataset>/metrics.json, report.md, figures/)
    -> select.select_model on all clips -> reports/<dataset>/model.joblib
"""

import json
import logging
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import joblib
import numpy as np
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from tqdm import tqdm

from extract.errors import EmofuseError
from extract.atomic import atomic_path
from features.store import FeatureStore, store_path
from fusion.protocol import PROTOCOLS, shared_speakers, split_warning
from fusion.run import store_modalities
from fusion.speaker_norm import ADAPTIVE_LABEL, method_dir_name, parse_method_dir, parse_speaker_norm

from . import report
from .report import BASELINES, MODALITY_ORDER, PROTOCOL_ORDER
from .classifiers import CLASSIFIERS, make_classifier, parse_classifiers
from .frames import SEQUENCE_METHOD, clip_sequences, consumed, sequence_families
from .metrics import fold_scores, summarise_folds
from .model import Candidate, SavedModel, freeze_params
from .select import Corpus, nested_selection, on_one_thread, select_model, selectable, selection_key

SEED = 0
BASELINE_CLASSIFIER = "logreg"
BLOCKS_WITHOUT_TEXT = "the fold's audio and video outputs side by side; text is not used"
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


def evaluate(dataset, method, classifiers, *, protocol=None, speaker_norm="none", cache_dir=Path("cache"),
             reports_dir=Path("reports"), n_jobs=1, progress=True) -> dict:
    """Cross-validate classifiers on the fused folds of ``method``, select, write the report.

    For each protocol evaluated, every modality (audio, video, text, fused) and classifier is
    scored on the fused folds, next to the eGeMAPS baseline on the same folds.  On a
    speaker-independent protocol, nested selection (``classify.select``) then chooses among
    every fused method of the protocol with the same adaptation (``speaker_norm``) x the
    classifiers, inside the training speakers: its outer scores are the ``selected`` figure
    (no adaptation) or the ``selected_adaptive`` figure of the mode.  Results merge into
    ``<reports_dir>/<dataset>/metrics.json`` (same protocol x modality x method x classifier
    replaced, others kept); ``report.md`` and its figures are redrawn from the merged
    results, and ``model.joblib`` holds the candidate the same selection chooses on all clips.

    Parameters
    ----------
    dataset : str
        Corpus name, e.g. ``"ravdess"``.
    method : str
        Fusion method, as given to ``python -m fusion``, e.g. ``"concat"``.
    classifiers : str or list of str
        ``"all"``, ``"light"``, a comma list or a list of names (see ``classify.classifiers``).
        Selection compares the light ones and the torch networks named explicitly, on
        fused vectors (sequence and block classifiers are table rows only).
    protocol : str or None
        Evaluate only this protocol; None: every protocol whose fused folds exist.
    speaker_norm : {"none", "all", "enrol:K"}
        Which adaptation of ``method`` to read (``fusion.speaker_norm.method_dir_name``).
    cache_dir, reports_dir : Path
    n_jobs : int
        joblib workers of the table's fits and of the nested selection.
    progress : bool
        Progress bars over folds x classifiers and selection fits.

    Returns
    -------
    summary : dict
        ``results`` (the entries of this run), ``selected`` and ``selected_adaptive`` (of the
        protocols of this run), ``metrics``, ``report`` and ``model`` (paths), ``best`` (the
        model's selection, or None).

    Raises
    ------
    EmofuseError
        Unknown classifier, protocol or normalisation, no fused folds for ``method``, or no
        feature store.
    """
    names = parse_classifiers(classifiers)
    mode = parse_speaker_norm(speaker_norm)
    fused_root = Path(cache_dir) / dataset / "fused"
    method_dir = fused_root / method_dir_name(method, mode)
    mode = parse_method_dir(method_dir.name)[1]  # `--method concat-snorm` names the adaptation too
    norm_arg = "" if mode == "none" else f" SNORM={mode}"
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise EmofuseError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        protocols = [protocol] if (method_dir / protocol / "folds.json").is_file() else []
    else:
        protocols = [p for p in PROTOCOL_ORDER if (method_dir / p / "folds.json").is_file()]
    if not protocols:
        raise EmofuseError(f"no fused features{f' for protocol {protocol}' if protocol else ''} in {method_dir}: "
                           f"run `make fuse DATASET={dataset} METHOD={method}"
                           f"{f' PROTOCOL={protocol}' if protocol else ''}{norm_arg}` first")
    report_dir = Path(reports_dir) / dataset
    existing = report.read_metrics(report_dir / "metrics.json")
    selected, adaptive = {}, {}
    ahead = {}  # select_model's inner scores that selection measures on the way
    with FeatureStore.open(store_path(dataset, cache_dir)) as store:
        results = []
        for name in protocols:
            folds_file = json.loads((method_dir / name / "folds.json").read_text())
            warning = split_warning(name, shared_speakers(folds_file["folds"], store.clips))
            table = evaluate_protocol(store, method_dir / name, method_dir.name, names, warning=warning,
                                      progress=progress, n_jobs=n_jobs)
            results += table + evaluate_baselines(store, method_dir / name, warning=warning, n_jobs=n_jobs)
            if warning is None:  # selection only where no speaker is on both sides
                figure = select_protocol(store, fused_root, name, folds_file["folds"], classifiers, mode,
                                         existing, n_jobs, progress, table=table, ahead=ahead)
                if figure and mode == "none":
                    selected[name] = figure
                elif figure:
                    adaptive[name] = {mode: figure}
        if not results:
            raise EmofuseError(f"none of {', '.join(names)} could run on {method_dir} and the store has no "
                               "eGeMAPS baseline; for bilstm_sa the store needs frame-level sequences")
        metrics = report.merge_metrics(existing, results, dataset, selected=selected, selected_adaptive=adaptive)
        draw_fused_space(method_dir / protocols[0], method_dir.name, report_dir)
        metrics["model"] = save_model(store, metrics, report_dir / MODEL_FILE, ahead=ahead, n_jobs=n_jobs,
                                      progress=progress)
    report.write_metrics(report_dir / "metrics.json", metrics)
    report_path = report.write_report(report_dir, metrics, changed={(r["protocol"], r["method"]) for r in results})
    return {"results": results, "selected": selected, "selected_adaptive": adaptive,
            "metrics": report_dir / "metrics.json", "report": report_path,
            "model": report_dir / MODEL_FILE if metrics["model"] else None, "best": metrics["model"]}


# ---------------------------------------------------------------------------------------------
# Nested selection
# ---------------------------------------------------------------------------------------------


def selection_classifiers(spec) -> list:
    """The classifiers selection compares: the light ones of ``spec`` and the others named
    in it explicitly (not through ``all``: each torch network multiplies the selection's cost
    by its training time), that take fused vectors or frame sequences."""
    names = parse_classifiers(spec)
    tokens = spec.split(",") if isinstance(spec, str) else list(spec)
    named = {t.strip() for t in tokens} - {"all", "light"}
    return [n for n in names if selectable(n) and (CLASSIFIERS[n].light or n in named)]


def protocol_candidates(fused_root: Path, protocol: str, folds: list, classifiers: list, mode="none") -> list:
    """The candidates of a protocol: each fused method directory of ``mode`` x modality x classifier.

    A directory whose folds differ from ``folds`` (another seed) is left out, with a message.
    A method fused with a STIP bag of words (``stip_bow``) gives candidates that refit the
    codebook on each training side.
    """
    candidates = []
    for directory in sorted(p for p in Path(fused_root).iterdir() if (p / protocol / "folds.json").is_file()):
        if parse_method_dir(directory.name)[1] != mode:
            continue
        if json.loads((directory / protocol / "folds.json").read_text())["folds"] != folds:
            log.warning("selection leaves out %s: its %s folds differ from the evaluated ones", directory.name,
                        protocol)
            continue
        for modality in MODALITY_ORDER:
            meta_path = directory / protocol / modality / "meta.json"
            if not meta_path.is_file():
                continue
            meta = json.loads(meta_path.read_text())
            params = freeze_params(meta.get("requested_params", {}))
            candidates += [Candidate(modality, meta["method"], params, name, mode, int(meta.get("seed", 0)),
                                     int(meta.get("stip_bow") or 0))
                           for name in classifiers]
    return list(dict.fromkeys(candidates))


def table_scores(entries: list, candidates: list) -> dict:
    """The outer scores the evaluation table already holds: Candidate -> {fold: figures}.

    The table fitted each classifier on every fold of the evaluated fused method (entries of
    method ``Candidate.method_dir``), its fusion fitted on the same training clips: the same
    fit as selection's outer refit of that candidate, so selection reads the figures instead
    of fitting again.  Sequence candidates are left out (the table reads their frames in
    another way).
    """
    by_run = {(e["method"], e["modality"], e["classifier"]): e for e in entries}
    return {c: {fold["fold"]: fold for fold in by_run[c.method_dir, c.modality, c.classifier]["folds"]}
            for c in candidates if not c.sequence and (c.method_dir, c.modality, c.classifier) in by_run}


def select_protocol(store, fused_root, protocol, folds, classifiers, mode, existing, n_jobs, progress, table=(),
                    ahead=None):
    """The nested-selection figure of a protocol over its fused methods of adaptation ``mode``.

    A figure whose key (candidates, folds, store configuration and clips) matches the one in
    ``existing`` metrics is reused.  ``table``: this evaluation's entries of the protocol,
    whose outer scores selection reads (``table_scores``); ``ahead``: see ``nested_selection``.
    None when there is no candidate or the folds have too few training speakers.
    """
    names = selection_classifiers(classifiers)
    if not names:
        log.warning("no classifier of %s takes fused vectors or frame sequences: no nested selection", classifiers)
        return None
    vector_names = [n for n in names if CLASSIFIERS[n].input == "vector"]
    candidates = protocol_candidates(fused_root, protocol, folds, vector_names, mode) if vector_names else []
    sequence_names = [n for n in names if CLASSIFIERS[n].input == "sequence"]
    if sequence_names and mode != "none":
        log.info("the sequence classifiers %s read frames without speaker adaptation: they are candidates of the "
                 "selection without adaptation only", ", ".join(sequence_names))
    elif sequence_names:  # once per distinct set of frame families, whatever the fused methods
        candidates += [Candidate(m, SEQUENCE_METHOD, (), n) for m in frame_modalities(store) for n in sequence_names]
    if not candidates:
        return None
    clips = store.clips[["clip_id", "speaker", "label"]].astype(str).to_csv(index=False)
    key = selection_key([c.describe() for c in candidates], folds, store.config_hash, clips)
    old = (existing.get("selected", {}).get(protocol) if mode == "none"
           else existing.get("selected_adaptive", {}).get(protocol, {}).get(mode))
    if old and old.get("key") == key:
        log.info("nested selection of %s (%s) is up to date; reusing it", protocol, mode)
        return old
    corpus = Corpus.from_store(store, sorted({c.modality for c in candidates}, key=MODALITY_ORDER.index),
                               stip_bow=any(c.stip_bow for c in candidates),
                               frames={c.modality for c in candidates if c.sequence})
    try:
        figure = nested_selection(corpus, folds, candidates, scored=table_scores(table, candidates), ahead=ahead,
                                  n_jobs=n_jobs, progress=progress, desc=f"select {protocol} {mode}")
    except EmofuseError as err:
        log.warning("no nested selection for %s (%s): %s", protocol, mode, err)
        return None
    return figure | {"protocol": protocol, "speaker_norm": mode, "key": key} | (
        {"adaptation": ADAPTIVE_LABEL} if mode != "none" else {})


def save_model(store, metrics: dict, path: Path, *, ahead=None, n_jobs=1, progress=True):
    """Choose and refit the model on all clips with the candidates of the headline selection.

    The reference protocol is the first speaker-independent one with a ``selected`` figure
    (``speaker``, then ``loso``, then ``manifest``); its candidates are compared by inner
    speaker-grouped CV over all speakers and the winner is refitted on all clips
    (``select.select_model``).  Its adaptive candidates (``all`` mode, else the first
    enrolment mode) give the model's speaker-adaptive variant.  A variant is refitted only
    when its candidates, the store's configuration or its clips changed.  ``ahead``: inner
    scores that this run's selection measured (``select.select_model``).

    Returns
    -------
    selection : dict or None
        The saved model's protocol, variants and their selection (None without a
        speaker-independent selection).
    """
    protocol = next((p for p in PROTOCOL_ORDER if p in metrics.get("selected", {})), None)
    if protocol is None:
        return None
    variants = {"none": metrics["selected"][protocol]["candidates"]}
    adaptive = metrics.get("selected_adaptive", {}).get(protocol, {})
    mode = "all" if "all" in adaptive else next(iter(sorted(adaptive)), None)
    if mode:
        variants["adaptive"] = adaptive[mode]["candidates"]
    clips = store.clips[["clip_id", "speaker", "label"]].astype(str).to_csv(index=False)
    keys = {variant: selection_key(described, store.config_hash, clips) for variant, described in variants.items()}
    saved = SavedModel.read(path) if path.is_file() else None
    if saved and {v: s.get("key") for v, s in saved.selection.items()} == keys:
        return {"protocol": protocol, **saved.selection}
    modalities = sorted({c["modality"] for described in variants.values() for c in described},
                        key=MODALITY_ORDER.index)
    candidates = [Candidate.from_description(c) for described in variants.values() for c in described]
    corpus = Corpus.from_store(store, modalities, stip_bow=any(c.stip_bow for c in candidates),
                               frames={c.modality for c in candidates if c.sequence})
    fitted, selection = {}, {}
    for variant, described in variants.items():
        if saved and saved.selection.get(variant, {}).get("key") == keys[variant]:  # this variant is unchanged
            fitted[variant], selection[variant] = saved.variants[variant], saved.selection[variant]
            continue
        candidates = [Candidate.from_description(c) for c in described]
        fitted[variant], selection[variant] = select_model(corpus, candidates, ahead=ahead,
                                                           n_jobs=n_jobs, progress=progress)
        selection[variant].pop("candidates")
        selection[variant]["key"] = keys[variant]
    model = SavedModel(store.dataset, store.config, store.config_hash, fitted, selection)
    with atomic_path(path) as tmp:
        joblib.dump(model, tmp)
    return {"protocol": protocol, **selection}


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


def evaluate_protocol(store, protocol_dir: Path, method: str, names: list, *, warning=None, progress=False,
                      n_jobs=1) -> list:
    """Results of every classifier on every modality of one protocol directory.

    A ``vector`` classifier reads the fused folds.  A ``sequence`` classifier reads the
    clips' frame-level streams from ``store`` (the fold's clip ids) and no fusion output, so
    its results are labelled with method ``frames`` (``SEQUENCE_METHOD``) whatever
    ``method`` is: evaluating two methods gives that row once, not twice under two names.
    A ``blocks`` classifier runs on the fused modality with the fold's audio and video
    outputs side by side (labelled ``BLOCKS_WITHOUT_TEXT`` when the store also has text).
    ``warning`` (a split that is not speaker-independent) and the adaptation label of an
    adaptive ``method`` go into every entry.
    """
    folds_file = json.loads((protocol_dir / "folds.json").read_text())
    protocol = folds_file["protocol"]
    mode = parse_method_dir(method)[1]
    folds = {m: load_folds(protocol_dir / m) for m in MODALITY_ORDER if (protocol_dir / m).is_dir()}
    folds = {m: f for m, f in folds.items() if f}
    runs, framed = [], frame_modalities(store)
    for modality in folds:
        for name in names:
            spec = CLASSIFIERS[name]
            if spec.input == "blocks" and not (modality == "fused" and {"audio", "video"} <= folds.keys()):
                continue
            if spec.input == "sequence" and (modality not in framed or mode.startswith("enrol")):
                continue  # enrolment folds lack the enrolment clips: frames are scored on the full folds
            runs.append((modality, name))

    def work():  # one run's splits at a time: frame sequences are built anew for every fold
        for modality, name in runs:
            spec = CLASSIFIERS[name]
            splits, blocks = _splits(spec.input, folds[modality], folds, store, modality)
            yield partial(make_classifier, name, random_state=SEED, blocks=blocks), splits, spec.groups

    results = []
    for (modality, name), fold_results in zip(runs, cross_validate_runs(
            work(), n_jobs=n_jobs, progress=progress, desc=f"evaluate {method} {protocol}",
            total=sum(len(folds[modality]) for modality, _ in runs))):
        spec = CLASSIFIERS[name]
        if spec.input == "sequence":
            labels = {"consumed": consumed(sequence_families(store, modality))}
            entry = _entry(protocol, modality, SEQUENCE_METHOD, name, fold_results)
        else:
            labels = {"adaptation": ADAPTIVE_LABEL, "speaker_norm": mode} if mode != "none" else {}
            if spec.input == "blocks" and "text" in folds:
                labels["consumed"] = BLOCKS_WITHOUT_TEXT
            entry = _entry(protocol, modality, method, name, fold_results)
        results.append(entry | labels | ({"warning": warning} if warning else {}))
        log.info("%s %s %s %s: UA %.3f over %d folds", protocol, modality, entry["method"], name,
                 entry["ua"], len(fold_results))
    return results


def frame_modalities(store) -> list:
    """The modalities whose frame sequences a sequence classifier reads, each set of frame
    families once (an audio + text store's fused frames are its audio frames: ``audio`` only)."""
    present = store_modalities(store)
    modalities = {}
    for modality in [*present, *(["fused"] if len(present) > 1 else [])]:
        modalities.setdefault(tuple(sequence_families(store, modality)), modality)
    return [m for families, m in modalities.items() if families]


def evaluate_baselines(store, protocol_dir: Path, *, warning=None, n_jobs=1) -> list:
    """The openSMILE + logistic-regression baselines on the folds of ``protocol_dir``.

    For each family of ``report.BASELINES`` the store has (eGeMAPS v02, 88 functionals;
    ComParE 2016, 6,373), a class-balanced, standardised logistic regression trained on the
    training clips of each fold and tested on its test clips (those with audio, as the fusion
    stage keeps them): the field's standard reference points.  One result per family found;
    an empty list when the store has neither.
    """
    families = store.families("audio")
    folds = json.loads((protocol_dir / "folds.json").read_text())
    row_of = {clip_id: i for i, clip_id in enumerate(store.clips["clip_id"])}
    labels = store.clips["label"].astype(str).to_numpy()
    speakers = store.clips["speaker"].astype(str).to_numpy()
    entries = []
    for method, family in BASELINES.items():
        if family not in families:
            continue
        X, _ = store.functionals(families=[family])
        has_audio = np.isfinite(X).any(axis=1)
        splits = []
        for fold in folds["folds"]:
            train = [row_of[i] for i in fold["train_ids"] if has_audio[row_of[i]]]
            test = [row_of[i] for i in fold["test_ids"] if has_audio[row_of[i]]]
            splits.append(Split(fold["fold"], X[train], X[test], labels[train], labels[test],
                                speakers[train], speakers[test]))
        fold_results = cross_validate(lambda: make_classifier(BASELINE_CLASSIFIER, random_state=SEED), splits,
                                      n_jobs=n_jobs)
        entry = _entry(folds["protocol"], "audio", method, BASELINE_CLASSIFIER, fold_results)
        entries.append(entry | ({"warning": warning} if warning else {}))
    return entries


def cross_validate(build, splits, *, groups: bool = False, n_jobs: int = 1) -> list:
    """Fit a fresh estimator on each split's training side and score its test side.

    Each fit runs on one BLAS/OpenMP thread, with ``n_jobs`` splits at a time: on a small
    training set (hundreds of clips) threads inside one fit cost more than they save (a
    660-clip logistic regression: 0.27 s of CPU on one thread, 2.9 s on two), and the scores
    never depend on ``n_jobs``.

    Parameters
    ----------
    build : callable
        ``build()`` -> an unfitted classifier.
    splits : list of Split
    groups : bool
        Pass the training speakers to ``fit(..., groups=)`` (speaker-grouped tuning).
    n_jobs : int
        Splits fitted in parallel (worker processes).

    Returns
    -------
    folds : list of dict
        Per split: ``fold``, ``test_speakers`` and the ``metrics.fold_scores`` figures.
    """
    return cross_validate_runs([(build, splits, groups)], n_jobs=n_jobs)[0]


def cross_validate_runs(runs, *, n_jobs: int = 1, progress: bool = False, desc: str = "evaluate",
                        total=None) -> list:
    """``cross_validate`` of several runs, their fits in one queue of ``n_jobs`` workers, so no
    worker waits at the end of one classifier's folds for the next.

    Parameters
    ----------
    runs : iterable of (build, splits, groups)
        As ``cross_validate`` takes them; read one run at a time as the queue reaches it, so a
        generator holds only the splits in flight.
    n_jobs : int
    progress : bool
        A progress bar over the fits.
    desc : str
        The bar's title.
    total : int, optional
        The number of fits, for the bar.

    Returns
    -------
    folds : list of list of dict
        Per run, ``cross_validate`` 's result.
    """
    results, owners = [], []  # per run its folds; per task its run, in task order

    def tasks():
        for build, splits, groups in runs:
            results.append([])
            labels = sorted({*np.concatenate([np.concatenate([s.y_train, s.y_test]) for s in splits]).tolist()})
            for split in splits:
                owners.append(len(results) - 1)
                yield joblib.delayed(on_one_thread)(_fit_and_score, build, split, groups, labels)

    fits = joblib.Parallel(n_jobs=max(1, n_jobs), return_as="generator")(tasks())
    for i, fold in enumerate(tqdm(fits, total=total, disable=not progress, unit="fit", desc=desc)):
        results[owners[i]].append(fold)
    return results


def _fit_and_score(build, split, groups, labels) -> dict:
    estimator = build()
    estimator.fit(split.X_train, split.y_train, **({"groups": split.speakers_train} if groups else {}))
    y_pred = np.asarray(estimator.predict(split.X_test)).astype(str)
    return {"fold": split.fold, "test_speakers": sorted(set(split.speakers_test.tolist())),
            **fold_scores(split.y_test, y_pred, labels, split.speakers_test)}


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


# ---------------------------------------------------------------------------------------------
# The 2-D view of the fused space
# ---------------------------------------------------------------------------------------------


def draw_fused_space(protocol_dir: Path, method: str, report_dir: Path):
    """Plot fold 0's test clips in 2-D (LDA fitted on its training clips), coloured by label.

    Uses the fused modality, or the only modality there is.  Returns the PNG path.
    """
    modality = next(m for m in ("fused", *MODALITY_ORDER) if (protocol_dir / m / "fold-0.npz").is_file())
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
    adaptive = f", {ADAPTIVE_LABEL}" if parse_method_dir(method)[1] != "none" else ""
    title = (f"{method}{adaptive}, {modality}: fold 0 test speakers {speakers}\n"
             f"{'LDA' if lda else 'PCA'} fitted on the training speakers")
    return report.plot_embedding(embedding, fold["y_test"].astype(str), title,
                                 report_dir / "figures" / f"space_{report.slug(method)}.png")
