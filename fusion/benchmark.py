"""Compare fusion pipelines on one modality of a feature store, leave-one-speaker-out.

Every pipeline is fitted on the training speakers of each fold only (its hyper-parameters
and feature groups chosen there, by inner speaker-grouped folds) and scored by the same
classifier on the held-out speaker::

    python -m fusion.benchmark --store cache/ravdess/features.h5 --jobs 2 --out bench.json \\
        --pipelines concat,egemaps,compare,mfa,zebra --zebra-budget 40 --zebra-zebras 5

Pipelines (the classifier follows each): ``concat`` (every family but ``compare``:
imputation and standardisation), ``egemaps`` and ``compare`` (that family alone), ``mfa``
(concat, then ``MarginalFisherAnalysisCV``), ``zebra`` (concat, then
``ZebraFeatureSelector`` over column groups, fitness = the same classifier), with, on the
same folds, ``zebra-random``: as many groups drawn at random from zebra's candidates;
``stack`` (concat, then ``FamilyStacking`` with one logistic regression per family, its
penalty chosen inside the training speakers, the mean of their out-of-fold
log-probabilities) and ``stack-compare`` (the same with ``compare`` as one more family).
"""

import argparse
import json
import logging
import time

import joblib
import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline

from classify.classifiers import make_classifier
from classify.metrics import mean_and_std
from features.store import FeatureStore

from .concat import BlockConcat
from .mfa import MarginalFisherAnalysisCV
from .protocol import make_folds
from .stacking import FamilyStacking
from .zebra import ZebraFeatureSelector

PIPELINES = ("concat", "egemaps", "compare", "mfa", "zebra", "stack", "stack-compare")
LARGE_FAMILIES = ("compare",)
"""Families left out of ``concat`` (and of the pipelines built on it)."""


def pipeline_inputs(store, pipeline, modality="audio", families=None):
    """Feature matrix of a pipeline and its families.

    ``families`` (list of str) are those of ``concat`` and the pipelines built on it, by
    default every family of ``modality`` but ``LARGE_FAMILIES``.

    Returns
    -------
    X : pd.DataFrame [shape=(n_clips, d)]
        With the store's column names.
    groups : list of (str, np.ndarray)
        Each family's name and column indices in ``X``.
    """
    if families is None:
        families = [f for f in store.families(modality) if f not in LARGE_FAMILIES]
    if pipeline in ("egemaps", "compare"):
        chosen = [pipeline]
    elif pipeline == "stack-compare":
        chosen = [*families, "compare"]
    else:
        chosen = list(families)
    blocks, names, groups, start = [], [], [], 0
    for family in chosen:
        values, family_names = store.functionals(families=[family])
        blocks.append(values)
        names += family_names
        groups.append((family, np.arange(start, start + len(family_names))))
        start += len(family_names)
    return pd.DataFrame(np.hstack(blocks).astype(np.float64), columns=names), groups


def build(pipeline, classifier, seed, zebra_params, families=None):
    """The unfitted estimator of a pipeline name, classifier last; ``families`` (the groups of
    ``pipeline_inputs``) are the stacked families."""
    concat = BlockConcat(blocks=None).set_output(transform="pandas")
    steps = [concat]
    if pipeline == "mfa":
        steps.append(MarginalFisherAnalysisCV(classifier=classifier, random_state=seed))
    elif pipeline == "zebra":
        steps.append(ZebraFeatureSelector(classifier=classifier, random_state=seed, progress=False, **zebra_params))
    elif pipeline in ("stack", "stack-compare"):
        steps.append(FamilyStacking(families=families, classifier=classifier, random_state=seed))
    return make_pipeline(*steps, make_classifier(classifier, random_state=seed))


def run_fold(X, y, speakers, fold, pipeline, classifier, seed, zebra_params, families=None):
    """Fit on the fold's training speakers, predict its test speaker; results as a dict."""
    train, test = fold
    start = time.perf_counter()
    model = build(pipeline, classifier, seed, zebra_params, families)
    tuned = ("mfa", "zebra", "stack", "stack-compare")
    fit_params = {f"{model.steps[1][0]}__groups": speakers[train]} if pipeline in tuned else {}
    model.fit(X.iloc[train], y[train], **fit_params)
    result = {"pipeline": pipeline, "predicted": model.predict(X.iloc[test]).tolist(), "test": test.tolist()}
    step = model.steps[1][1]
    if pipeline == "mfa":
        result |= {"best_params": step.best_params_, "search": step.search_results_}
    if pipeline == "zebra":
        result |= {"selected_groups": step.selected_groups_, "n_columns": int(step.support_.sum()),
                   "n_evaluations": step.n_evaluations_, "n_iter": step.n_iter_,
                   "inner_scores": {"zebra": step.cv_score_, "search": step.search_score_, **step.reference_scores_},
                   "gain": step.gain_, "gain_se": step.gain_se_, "fell_back": step.fell_back_}
    if pipeline in ("stack", "stack-compare"):
        result |= {"best_params": step.best_params_, "inner_scores": step.inner_scores_}
    result["seconds"] = time.perf_counter() - start
    if pipeline == "zebra":  # the same number of groups, drawn at random from zebra's candidates
        rng = np.random.default_rng(seed + 1000 * len(result["test"]) + int(test[0]))
        drawn = rng.choice(step.candidates_, len(step.selected_groups_), replace=False)
        columns = np.sort(np.concatenate([step.feature_groups_[g][1] for g in drawn]))
        start = time.perf_counter()
        random_model = make_pipeline(BlockConcat(), make_classifier(classifier, random_state=seed))
        random_model.fit(X.iloc[train, columns], y[train])
        result["random"] = {"predicted": random_model.predict(X.iloc[test, columns]).tolist(),
                            "n_columns": int(len(columns)), "seconds": time.perf_counter() - start}
    return result


def summarise(results, y, folds):
    """UA per pipeline: mean and sample standard deviation (ddof=1, as in emofuse's reports) over
    folds, and pooled over all clips."""
    table = {}
    by_pipeline = {}
    for result in results:
        by_pipeline.setdefault(result["pipeline"], []).append(result)
        if "random" in result:
            by_pipeline.setdefault("zebra-random", []).append({**result["random"], "test": result["test"]})
    for name, fold_results in by_pipeline.items():
        per_fold = [balanced_accuracy_score(y[r["test"]], r["predicted"]) for r in fold_results]
        pooled = np.empty(len(y), dtype=object)
        for r in fold_results:
            pooled[r["test"]] = r["predicted"]
        covered = np.concatenate([r["test"] for r in fold_results])
        mean, std = mean_and_std(per_fold)
        table[name] = {"ua_mean": mean, "ua_std": std,
                       "ua_pooled": float(balanced_accuracy_score(y[covered], pooled[covered].astype(str))),
                       "ua_per_fold": per_fold, "seconds": float(sum(r["seconds"] for r in fold_results)),
                       "n_folds": len(fold_results)}
    return table


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fusion.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True)
    parser.add_argument("--pipelines", default=",".join(PIPELINES))
    parser.add_argument("--classifier", default="logreg")
    parser.add_argument("--families", help="families of concat and the pipelines built on it, comma-separated "
                        "(default: every audio family of the store but compare)")
    parser.add_argument("--zebra-budget", type=int, default=100)
    parser.add_argument("--zebra-zebras", type=int, default=10)
    parser.add_argument("--zebra-groups", default="column")
    parser.add_argument("--zebra-candidates", type=int, default=0, help="ANOVA pre-filter size; 0: none")
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    zebra_params = {"budget": args.zebra_budget, "n_zebras": args.zebra_zebras, "feature_groups": args.zebra_groups,
                    "max_candidates": args.zebra_candidates or None}
    with FeatureStore.open(args.store) as store:
        clips = store.clips
        families = args.families.split(",") if args.families else None
        inputs = {p: pipeline_inputs(store, p, families=families) for p in args.pipelines.split(",")}
    y = clips["label"].to_numpy(dtype=str)
    speakers = clips["speaker"].to_numpy(dtype=str)
    ids = clips["clip_id"].to_numpy(dtype=str)
    folds = [(np.flatnonzero(np.isin(ids, f.train_ids)), np.flatnonzero(np.isin(ids, f.test_ids)))
             for f in make_folds(clips, "loso", seed=args.seed)]
    tasks = [(p, k) for p in inputs for k in range(len(folds))]
    start = time.perf_counter()
    results = joblib.Parallel(n_jobs=args.jobs, verbose=5)(
        joblib.delayed(run_fold)(inputs[p][0], y, speakers, folds[k], p, args.classifier, args.seed, zebra_params,
                                 inputs[p][1])
        for p, k in tasks)
    table = summarise(results, y, folds)
    report = {"store": str(args.store), "protocol": "loso", "n_folds": len(folds), "classifier": args.classifier,
              "zebra": zebra_params, "wall_seconds": time.perf_counter() - start, "summary": table,
              "folds": results, "n_columns": {p: int(X.shape[1]) for p, (X, _) in inputs.items()}}
    with open(args.out, "w") as handle:
        json.dump(report, handle, indent=1, default=lambda v: v.item() if hasattr(v, "item") else str(v))
    for name, row in table.items():
        print(f"{name:14s} UA {100 * row['ua_mean']:5.1f} ± {100 * row['ua_std']:4.1f}  pooled "
              f"{100 * row['ua_pooled']:5.1f}  {row['seconds']:7.1f} s (sum over folds)")


if __name__ == "__main__":
    main()
