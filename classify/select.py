"""Nested selection: choose the method inside the training speakers, score it once outside.

Within each outer fold of a protocol, every candidate (modality x fusion method and its
parameters x classifier, ``classify.model.Candidate``) is scored by speaker-grouped
cross-validation over the fold's training speakers only (``GroupKFold`` with
``min(4, n_training_speakers)`` folds, UA = balanced accuracy).  Each inner split refits the
whole candidate on its inner-training clips: a STIP codebook (``stip_bow``), speaker
adaptation, the fusion pipeline (so the supervised MFA and zebra steps never see the
inner-test clips), then the classifier; one fusion fit per (fusion configuration, inner split)
serves every classifier, and inner splits of different outer folds that train on the same
speakers share one fit.  Sequence classifiers named by the user (``bilstm_sa``, ``omsn``)
compete too, as candidates of method ``frames``: they read the modality's frame-level streams
(``classify.frames``), not a fusion output, and are scored by the same inner folds.  The best
candidate is refitted on the outer fold's training speakers and scored once on its test
speakers.  This is the model selection of Cawley & Talbot (2010), "On over-fitting in model
selection and subsequent selection bias in performance evaluation" (JMLR 11); its outer scores
are emofuse's headline figure, whereas the maximum of a table of test-fold scores over methods
x classifiers is optimistically biased.

``select_model`` runs the same inner procedure on all clips (inner folds over all speakers)
and refits the winner on all of them: the model ``predict`` uses.
"""

import hashlib
import json
import logging
from dataclasses import dataclass, field

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import GroupKFold
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from extract.errors import EmofuseError
from features.parallel import keep_freed_memory
from fusion.run import (STIP_FAMILY, fit_stip_words, modality_matrix, stip_histograms, stip_points,
                        with_stip_words)
from fusion.speaker_norm import ADAPTIVE_LABEL, adapt

from .classifiers import CLASSIFIERS
from .frames import SEQUENCE_FAMILIES, SEQUENCE_METHOD, clip_frames, sequence_families
from .metrics import fold_scores, summarise_folds
from .model import FittedModel, fit_classifier

HOW = "inner speaker-grouped CV on training speakers"
MAX_INNER_FOLDS = 4

log = logging.getLogger(__name__)


@dataclass
class Corpus:
    """The store's clips as selection reads them: one input matrix per modality.

    ``bow_inputs`` (modality -> input without the fixed ``stip`` encoding) and
    ``stip_points`` (row -> STIP descriptors of a clip with video) serve candidates with a
    STIP bag of words, whose codebook is fitted on each training side.  ``sequences``
    (modality -> (per clip a frame sequence or None, {family: column count})) serve
    sequence classifiers (``classify.frames``).
    """

    ids: np.ndarray
    labels: np.ndarray
    speakers: np.ndarray
    inputs: dict  # modality -> (X [shape=(n_clips, d)], input_names, blocks)
    bow_inputs: dict = field(default_factory=dict)
    stip_points: dict = field(default_factory=dict)
    sequences: dict = field(default_factory=dict)

    @classmethod
    def from_store(cls, store, modalities, *, stip_bow=False, frames=()):
        """Functionals of ``modalities`` (audio, video, text, fused) as ``fusion.run`` builds
        them; with ``stip_bow``, also the inputs and STIP points a bag of words needs; the
        frame sequences of the modalities in ``frames``."""
        clips = store.clips
        inputs = {m: modality_matrix(store, m, skip=[]) for m in modalities}
        with_video = [m for m, (_, _, blocks) in inputs.items() if "video" in (b[0] for b in blocks)]
        corpus = cls(clips["clip_id"].to_numpy(str), clips["label"].to_numpy(str), clips["speaker"].to_numpy(str),
                     inputs, {m: modality_matrix(store, m, skip=[STIP_FAMILY]) for m in with_video} if stip_bow else {},
                     stip_points(store) if stip_bow and with_video else {})
        for modality in frames:
            rows = np.flatnonzero(corpus.present(modality))
            sequences = [None] * len(corpus.ids)
            found, widths = clip_frames(store, corpus.ids[rows], sequence_families(store, modality))
            for i, sequence in zip(rows, found):
                sequences[i] = sequence
            corpus.sequences[modality] = (sequences, widths)
        return corpus

    def present(self, modality) -> np.ndarray:
        """Clips with any feature of ``modality`` [shape=(n_clips,), dtype=bool]."""
        return np.isfinite(self.inputs[modality][0]).any(axis=1)

    def fusion_input(self, key, train) -> tuple:
        """The fusion input of the candidates of ``key`` (``Candidate.fusion_key``) when
        ``train`` [shape=(n_clips,), bool] are the training clips.

        Returns (X [shape=(n_clips, d)], input_names, blocks, STIP codebook or None); with a
        bag of words, the words of a codebook fitted on ``train`` join the video block.
        """
        if not key.stip_bow:
            return (*self.inputs[key.modality], None)
        if key.modality not in self.bow_inputs:
            raise EmofuseError(f"a STIP bag of words needs video, and the {key.modality} input has none")
        codebook = fit_stip_words(self.stip_points, train & self.present(key.modality), key.stip_bow, key.seed)
        histograms = stip_histograms(codebook, self.stip_points, len(self.ids))
        return (*with_stip_words(self.bow_inputs[key.modality], histograms), codebook)

    def store_columns(self, key) -> tuple:
        """(input_names, blocks) of the store columns the candidates of ``key`` read (without
        the STIP words a bag of words adds)."""
        return (self.bow_inputs if key.stip_bow else self.inputs)[key.modality][1:]


def group_candidates(candidates) -> dict:
    """Candidates by fusion configuration (``Candidate.fusion_key``) ->
    [(index, classifier)], so one fusion fit serves all of its classifiers."""
    groups = {}
    for index, candidate in enumerate(candidates):
        groups.setdefault(candidate.fusion_key, []).append((index, candidate.classifier))
    return groups


def inner_splits(speakers, rows) -> list:
    """Speaker-grouped inner (train, test) masks over ``rows`` [shape=(n_clips,), bool].

    ``min(MAX_INNER_FOLDS, n_speakers)`` folds; GroupKFold is deterministic.

    Raises
    ------
    EmofuseError
        Fewer than 2 speakers in ``rows``.
    """
    index = np.flatnonzero(rows)
    n_speakers = len(set(speakers[index].tolist()))
    if n_speakers < 2:
        raise EmofuseError(f"selection needs at least 2 training speakers, got {n_speakers}")
    splits = []
    for train, test in GroupKFold(n_splits=min(MAX_INNER_FOLDS, n_speakers)).split(index, groups=speakers[index]):
        masks = np.zeros((2, len(rows)), bool)
        masks[0, index[train]] = masks[1, index[test]] = True
        splits.append((masks[0], masks[1]))
    return splits


def _fit_fusion(corpus, key, train, tests):
    """[Fit a STIP codebook,] adapt, fit the fusion pipeline of ``key`` (``Candidate.fusion_key``)
    on ``train``, transform the training clips and each of ``tests`` (list of masks).  A
    sequence key (method ``frames``) has no fusion: the clips' frame sequences as they are.

    Each test side is adapted and transformed on its own, exactly as if it were the only one:
    a training clip's adapted values depend only on its own speaker's training clips.

    Returns (pipeline or None, Z_train, [(Z_scored or None, scored mask) per test side]).
    """
    present = corpus.present(key.modality)
    train = train & present
    if key.method == SEQUENCE_METHOD:
        sequences = corpus.sequences[key.modality][0]
        return (None, [sequences[i] for i in np.flatnonzero(train)],
                [([sequences[i] for i in np.flatnonzero(test & present)] if (test & present).any() else None,
                  test & present) for test in tests])
    X, names, blocks, _ = corpus.fusion_input(key, train)
    Xa, _ = adapt(X, corpus.ids, corpus.speakers, train, np.zeros_like(train), key.speaker_norm, seed=key.seed)
    pipeline = key.pipeline(blocks, names)
    pipeline.fit(Xa[train], corpus.labels[train], groups=corpus.speakers[train])
    transformed = []
    for test in tests:
        Xt, scored = adapt(X, corpus.ids, corpus.speakers, train, test & present, key.speaker_norm, seed=key.seed)
        # float32, as the fused folds and the saved model hold them
        transformed.append((np.asarray(pipeline.transform(Xt[scored]), np.float32) if scored.any() else None, scored))
    return pipeline, np.asarray(pipeline.transform(Xa[train]), np.float32), transformed


def _inner_split_scores(corpus, key, classifiers, train, tests):
    """Per test side in ``tests``, per classifier of one fusion configuration: UA of the
    classifier fitted once on ``train``."""
    present = corpus.present(key.modality)
    labels = sorted(set(corpus.labels.tolist()))
    _, Z_train, transformed = _fit_fusion(corpus, key, train, tests)
    scores = [{} for _ in tests]
    for _, name in classifiers:
        estimator = fit_classifier(name, Z_train, corpus.labels[train & present], corpus.speakers[train & present])
        for by_name, (Z_test, scored) in zip(scores, transformed):
            y_pred = np.asarray(estimator.predict(Z_test)).astype(str)
            by_name[name] = fold_scores(corpus.labels[scored], y_pred, labels)["ua"]
    return scores


def _inner_tasks(corpus, groups, sides, ahead=False) -> list:
    """The inner CV of every fusion configuration in ``groups`` within each training side of
    ``sides`` (list of (train, test) masks), one task per distinct (configuration, inner
    training clips), so that the workers stay busy even where there is one side
    (``select_model``) or one configuration.  Inner splits of different outer folds that
    train on the same clips share one fit, scored on each split's own test clips: under LOSO
    on 12 speakers, 11 of the 48 inner splits repeat another's training speakers.

    With ``ahead``, ``select_model``'s inner splits (over all clips, side ``len(sides)``) are
    scored too where one of these fits trains on the same clips (under LOSO on 12 speakers, 2
    of its 4), for the cost of one more transform and prediction.

    Returns a list of ([(side index, configuration, inner split index) per test side],
    (function, args)).
    """
    planned = {}
    everything = [(np.ones(len(corpus.ids), bool), None)] if ahead else []
    for k, (train, _) in enumerate(sides + everything):
        for key, members in groups.items():
            splits = inner_splits(corpus.speakers, train & corpus.present(key.modality))
            for i, (inner_train, inner_test) in enumerate(splits):
                owners, tests = planned.setdefault((key, inner_train.tobytes()), (members, inner_train, [], []))[2:]
                owners.append((k, key, i))
                tests.append(inner_test)
    return [(owners, (_inner_split_scores, (corpus, key, members, train, tests)))
            for (key, _), (members, train, owners, tests) in planned.items()
            if any(k < len(sides) for k, _, _ in owners)]


def _inner_scores(tasks, n_jobs, bar) -> dict:
    """Run ``tasks`` (``_inner_tasks``): {(side index, configuration): {inner split index:
    {classifier: UA}}}."""
    by_owner = {}
    for (owners, _), by_test in zip(tasks, _run([task for _, task in tasks], n_jobs, bar)):
        for (k, key, i), by_name in zip(owners, by_test):
            by_owner.setdefault((k, key), {})[i] = by_name
    return by_owner


def _mean_scores(groups, by_owner, k) -> dict:
    """Side ``k``'s {candidate index: mean inner UA} from ``_inner_scores``."""
    return {index: float(np.mean([split[name] for _, split in sorted(by_owner[k, key].items())]))
            for key, members in groups.items() for index, name in members}


def _split_key(corpus, key, train, test) -> tuple:
    """One inner split of configuration ``key``, named by its clips so that it holds across
    the ``Corpus`` objects of one store."""
    return (key, *(hashlib.sha1("\0".join(corpus.ids[mask].tolist()).encode()).hexdigest() for mask in (train, test)))


def _outer_score(corpus, candidate, train, test, fold_id, labels):
    """Refit ``candidate`` on ``train`` and score it once on ``test``: one fold's figures."""
    _, Z_train, [(Z_test, scored)] = _fit_fusion(corpus, candidate.fusion_key, train, [test])
    rows = train & corpus.present(candidate.modality)
    estimator = fit_classifier(candidate.classifier, Z_train, corpus.labels[rows], corpus.speakers[rows])
    y_pred = np.asarray(estimator.predict(Z_test)).astype(str)
    return {"fold": fold_id, "test_speakers": sorted(set(corpus.speakers[scored].tolist())),
            **fold_scores(corpus.labels[scored], y_pred, labels, corpus.speakers[scored])}


def _choose(inner: dict) -> tuple:
    """(index, inner UA) of the best candidate in ``inner`` (index -> UA); ties go to the earlier."""
    index = max(inner, key=lambda i: (inner[i], -i))
    return index, inner[index]


def _run(tasks, n_jobs, bar):
    """Run ``(function, args)`` tasks with joblib, advancing ``bar``; results in task order.

    Every task runs on one BLAS/OpenMP thread, in a worker or in this process alike, so the
    scores never depend on ``n_jobs`` (see ``classify.evaluate.cross_validate``)."""
    results = []
    for result in Parallel(n_jobs=n_jobs, return_as="generator")(delayed(on_one_thread)(f, *a) for f, a in tasks):
        results.append(result)
        bar.update()
    return results


def on_one_thread(function, *args):
    """``function(*args)`` with BLAS and OpenMP held to one thread: on a few hundred clips,
    threads inside one fit cost more than they save, and results never depend on them.  Freed
    memory is kept for the next fit (``features.parallel.keep_freed_memory``)."""
    keep_freed_memory()
    with threadpool_limits(1):
        return function(*args)


def nested_selection(corpus, folds, candidates, *, scored=None, ahead=None, n_jobs=1, progress=True,
                     desc="select") -> dict:
    """Nested selection over ``candidates`` on the outer ``folds`` of a protocol.

    Parameters
    ----------
    corpus : Corpus
    folds : list of dict
        Outer folds (``folds.json`` entries: fold, train_ids, test_ids).
    candidates : list of Candidate
    scored : dict, optional
        Candidate -> {outer fold id: figures}: outer scores already measured by the same fit
        (the evaluation table's), used instead of refitting the chosen candidate where the
        labels scored are the same.
    ahead : dict, optional
        Filled with the inner UA of ``select_model``'s splits (inner folds over all clips)
        that one of this selection's fits trains on; ``select_model(ahead=...)`` reads them
        instead of refitting.
    n_jobs : int
        joblib workers over (outer fold x fusion configuration x inner split) and the
        outer refits.
    progress : bool
        Show a progress bar over those tasks.

    Returns
    -------
    selected : dict
        ``ua``, ``accuracy``, ``macro_f1`` (means over outer folds, with ``_std`` and the other
        ``metrics.summarise_folds`` figures), ``folds`` (per outer fold figures), ``chosen``
        (per outer fold: the candidate and its inner UA), ``candidates``, ``how``,
        ``n_inner_folds``, ``labels``, ``n_folds``.

    Raises
    ------
    EmofuseError
        No candidates, or an outer fold with fewer than 2 training speakers.
    """
    if not candidates:
        raise EmofuseError("nested selection has no candidates")
    groups = group_candidates(candidates)
    labels = sorted(set(corpus.labels.tolist()))
    sides = [(np.isin(corpus.ids, f["train_ids"]), np.isin(corpus.ids, f["test_ids"])) for f in folds]
    # A single candidate is chosen whatever its inner score: no inner CV to run.
    tasks = [] if len(candidates) == 1 else _inner_tasks(corpus, groups, sides, ahead=ahead is not None)
    with tqdm(total=len(tasks) + len(folds), disable=not progress, unit="fit",
              desc=f"{desc}: {len(folds)} outer folds x {len(candidates)} candidates") as bar:
        by_owner = _inner_scores(tasks, n_jobs, bar)
        chosen = [_choose(_mean_scores(groups, by_owner, k)) for k in range(len(sides))] if tasks else []
        for owners, (_, (_, key, _, train, tests)) in tasks if ahead is not None else ():
            for (k, _, i), test in zip(owners, tests):
                if k == len(sides):  # one of select_model's splits, scored on the way
                    ahead[_split_key(corpus, key, train, test)] = by_owner[k, key][i]
        chosen = chosen or [(0, None)] * len(folds)
        known = [(scored or {}).get(candidates[index], {}).get(fold["fold"]) for (index, _), fold in zip(chosen, folds)]
        known = [figures if figures and list(figures["per_class"]) == labels else None for figures in known]
        bar.update(sum(figures is not None for figures in known))
        refits = iter(_run([(_outer_score, (corpus, candidates[index], train, test, fold["fold"], labels))
                            for (index, _), (train, test), fold, figures in zip(chosen, sides, folds, known)
                            if figures is None], n_jobs, bar))
        outer = [figures if figures is not None else next(refits) for figures in known]
    n_inner = [len(inner_splits(corpus.speakers, train)) if tasks else 0 for train, _ in sides]
    log.info("%s: %d outer folds x %d candidates, UA %.3f", desc, len(folds), len(candidates),
             np.mean([f["ua"] for f in outer]))
    return {**summarise_folds(outer), "labels": labels, "n_folds": len(outer), "folds": outer,
            "chosen": [{"fold": fold["fold"], **candidates[index].describe(), "inner_ua": score}
                       for fold, (index, score) in zip(folds, chosen)],
            "candidates": [c.describe() for c in candidates], "how": HOW, "n_inner_folds": n_inner}


def select_model(corpus, candidates, *, ahead=None, n_jobs=1, progress=True) -> tuple:
    """Choose among ``candidates`` by inner CV over all speakers and refit the winner on all clips.

    ``ahead``: inner scores measured by ``nested_selection(ahead=...)`` on the same store; a
    fit whose every split is there is not run again.

    Returns
    -------
    model : classify.model.FittedModel
        Every step fitted on all clips that have the candidate's modality; its classifier
        gives probabilities (calibrated when it has none of its own).
    selection : dict
        ``chosen`` (the candidate and its inner UA), ``candidates``, ``how``, ``n_inner_folds``.
    """
    groups = group_candidates(candidates)
    tasks = _inner_tasks(corpus, groups, [(np.ones(len(corpus.ids), bool), None)]) if len(candidates) > 1 else []
    known, to_run = {}, []
    for owners, task in tasks:
        _, key, members, train, tests = task[1]
        found = [(ahead or {}).get(_split_key(corpus, key, train, test)) for test in tests]
        if all(f and {name for _, name in members} <= set(f) for f in found):
            known.update(zip(owners, found))
        else:
            to_run.append((owners, task))
    with tqdm(total=len(to_run) + 1, disable=not progress, unit="fit",
              desc=f"model: {len(candidates)} candidates on all clips") as bar:
        by_owner = _inner_scores(to_run, n_jobs, bar)
        for (k, key, i), by_name in known.items():
            by_owner.setdefault((k, key), {})[i] = by_name
        index, score = _choose(_mean_scores(groups, by_owner, 0)) if tasks else (0, None)
        candidate = candidates[index]
        model = on_one_thread(fit_model, corpus, candidate)
        bar.update()
    selection = {"chosen": candidate.describe() | {"inner_ua": score}, "candidates": [c.describe() for c in candidates],
                 "how": HOW.replace("training speakers", "all speakers"),
                 "n_inner_folds": len(inner_splits(corpus.speakers, corpus.present(candidate.modality)))
                 if tasks else 0}
    return model, selection


def fit_model(corpus, candidate, rows=None) -> FittedModel:
    """Fit every step of ``candidate`` on the clips of ``rows`` [shape=(n_clips,), bool; all
    clips when None] that have its modality.

    Each speaker is adapted with its own clips (adaptive candidates); the classifier is
    calibrated if it has no ``predict_proba``.
    """
    key = candidate.fusion_key
    rows = corpus.present(candidate.modality) & (True if rows is None else rows)
    if candidate.sequence:
        _, sequences, _ = _fit_fusion(corpus, key, rows, [])
        estimator = fit_classifier(candidate.classifier, sequences, corpus.labels[rows], corpus.speakers[rows],
                                   probabilities=True)
        widths = corpus.sequences[candidate.modality][1]
        blocks = [[m, 0] for m, families in SEQUENCE_FAMILIES.items() if set(families) & set(widths)]
        return FittedModel(candidate, [], blocks, None, estimator, [str(c) for c in estimator.classes_],
                           int(rows.sum()), frame_families=dict(widths))
    X, names, blocks, codebook = corpus.fusion_input(key, rows)
    Xa, _ = adapt(X, corpus.ids, corpus.speakers, rows, np.zeros_like(rows), candidate.speaker_norm)
    fusion = key.pipeline(blocks, names)
    fusion.fit(Xa[rows], corpus.labels[rows], groups=corpus.speakers[rows])
    estimator = fit_classifier(candidate.classifier, np.asarray(fusion.transform(Xa[rows]), np.float32),
                               corpus.labels[rows], corpus.speakers[rows], probabilities=True)
    store_names, store_blocks = corpus.store_columns(key)
    return FittedModel(candidate, list(store_names), [list(b) for b in store_blocks], fusion, estimator,
                       [str(c) for c in estimator.classes_], int(rows.sum()), codebook)


def selectable(classifier: str) -> bool:
    """Whether nested selection can refit ``classifier``: on fused vectors, or on frame
    sequences (not on audio and video blocks)."""
    return CLASSIFIERS[classifier].input in ("vector", "sequence")


def selection_key(*parts) -> str:
    """A digest of what a selection depends on (candidates, folds, store), to reuse its result."""
    text = json.dumps(parts, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def adaptive_title(mode: str) -> str:
    """How a speaker-adaptive selection is labelled: the adaptation and its mode."""
    return f"{ADAPTIVE_LABEL}, {'all clips' if mode == 'all' else mode}"
