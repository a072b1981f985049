"""One modality's stored features, one classifier, the corpus's own train/test split.

The fusion and evaluation stages cover audio and video; this evaluates any single modality
of a feature store (the text of a transcript-only manifest such as MELD's) on the split
the manifest gives (``PROTOCOL=manifest``: ``train`` and ``dev`` rows train, ``test`` rows
test).  Besides emofuse's figures it reports the support-weighted F1 that MELD papers
quote (Poria et al. 2019), and whether the split shares speakers between train and test.

    python -m classify.holdout --store cache/manifest/features.h5 --modality text --classifier logreg
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from extract.atomic import atomic_path
from extract.errors import EmofuseError
from extract.meld import speaker_overlap
from features.store import FeatureStore
from fusion.protocol import make_folds

from .classifiers import CLASSIFIERS, make_classifier
from .metrics import fold_scores


def weighted_f1(per_class: dict) -> float:
    """Mean of per-class F1 weighted by each class's number of test clips.

    Parameters
    ----------
    per_class : dict
        ``{label: {"f1": float, "support": int, ...}}`` as :func:`classify.metrics.fold_scores` gives.

    Returns
    -------
    float in [0, 1]
    """
    f1 = np.array([s["f1"] for s in per_class.values()])
    support = np.array([s["support"] for s in per_class.values()], dtype=float)
    return float((f1 * support).sum() / support.sum())


def evaluate_holdout(store_path, *, modality: str = "text", classifier: str = "logreg", seed: int = 0) -> dict:
    """Fit ``classifier`` on the train rows' ``modality`` features, score the test rows.

    Parameters
    ----------
    store_path : str or Path
        A feature store whose clip table has a ``split`` column (train/dev/test).
    modality : str
        ``"text"``, ``"audio"`` or ``"video"``: every family of it, side by side.
    classifier : str
        A light classifier of :data:`classify.classifiers.CLASSIFIERS` (one taking a vector).
    seed : int

    Returns
    -------
    dict
        ``fold_scores``' figures plus ``weighted_f1``, ``n_train``, ``families``, ``classifier``,
        ``modality``, ``split`` (:func:`extract.meld.speaker_overlap`: ``label`` says
        ``speaker-overlapping split`` when train and test share a speaker) and ``fit_seconds``.

    Raises
    ------
    EmofuseError
        A store without that modality or without a train/test split.
    """
    spec = CLASSIFIERS.get(classifier)
    if spec is None or spec.input != "vector" or spec.groups:
        raise EmofuseError(f"classifier {classifier!r} is not a vector classifier without tuning groups")
    with FeatureStore.open(store_path) as store:
        families = store.families(modality)
        if not families:
            raise EmofuseError(f"{store_path}: no {modality} features; it has {store.families()}")
        X, _ = store.functionals(families=families)
        clips = store.clips.copy()
    stored = np.isfinite(X).all(axis=1)
    X, clips = X[stored], clips[stored].reset_index(drop=True)
    fold = make_folds(clips, "manifest")[0]
    test = clips["clip_id"].isin(fold.test_ids).to_numpy()
    y = clips["label"].to_numpy()
    model = make_classifier(classifier, random_state=seed)
    start = time.perf_counter()
    model.fit(X[~test], y[~test])
    seconds = time.perf_counter() - start
    labels = sorted(set(y))
    scores = fold_scores(y[test], model.predict(X[test]), labels, clips["speaker"].to_numpy()[test])
    scores.pop("per_speaker_accuracy")
    return scores | {
        "weighted_f1": weighted_f1(scores["per_class"]), "n_train": int((~test).sum()),
        "families": families, "classifier": classifier, "modality": modality,
        "split": speaker_overlap(clips), "fit_seconds": seconds,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m classify.holdout", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--modality", default="text")
    parser.add_argument("--classifier", default="logreg")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    try:
        result = evaluate_holdout(args.store, modality=args.modality, classifier=args.classifier, seed=args.seed)
    except EmofuseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    split = result["split"]
    print(f"{args.modality} / {args.classifier}: trained on {result['n_train']}, tested on {result['n_test']} "
          f"({split['label']}: {len(split['shared_speakers'])} of {split['test_speakers']} test speakers "
          f"seen in training, {split['test_clips_by_shared']:.1%} of test clips)")
    print(f"  weighted F1 {result['weighted_f1']:.4f}  accuracy {result['accuracy']:.4f}  "
          f"UA {result['ua']:.4f}  macro F1 {result['macro_f1']:.4f}")
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
