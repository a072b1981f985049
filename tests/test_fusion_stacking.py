"""Stacking per feature family."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline

from fusion.methods import build_pipeline
from fusion.stacking import FamilyStacking


def speakers_with_families(seed=0, n_speakers=10, per_speaker=24, n_classes=4):
    """An informative family (columns 0-4), a noise family (5-44) and speaker offsets."""
    rng = np.random.default_rng(seed)
    speakers = np.repeat(np.arange(n_speakers), per_speaker)
    y = np.tile(np.arange(n_classes), len(speakers) // n_classes)
    X = rng.normal(size=(len(y), 45)) + 0.3 * rng.normal(size=(n_speakers, 45))[speakers]
    X[:, :5] += 1.5 * rng.normal(size=(n_classes, 5))[y]
    return X, y, speakers


FAMILIES = [("good", list(range(5))), ("noise", list(range(5, 45)))]


def test_families_are_scored_inside_training_speakers_and_fused_on_new_ones():
    X, y, speakers = speakers_with_families()
    train = speakers < 7
    stack = FamilyStacking(families=FAMILIES, classifier=LogisticRegression(max_iter=500),
                           param_grid={"C": [1e-6, 1.0]}, random_state=0)
    Z = stack.fit_transform(X[train], y[train], groups=speakers[train])
    assert Z.shape == (train.sum(), 4) and np.all(Z <= 0)
    # C = 1e-6 predicts nearly one class for all (UA ~ 1/4): the informative family takes C = 1
    assert stack.best_params_["good"] == {"C": 1.0} and stack.inner_scores_["good"] > 0.8
    assert stack.inner_scores_["noise"] < 0.45
    assert list(stack.get_feature_names_out()) == ["logp_0", "logp_1", "logp_2", "logp_3"]
    held_out = stack.transform(X[~train]).argmax(axis=1)
    assert balanced_accuracy_score(y[~train], held_out) > 0.8
    concat = FamilyStacking(families=FAMILIES, classifier=LogisticRegression(max_iter=500), param_grid={"C": [1.0]},
                            combine="concat").fit(X[train], y[train], groups=speakers[train])
    assert concat.transform(X[~train]).shape == ((~train).sum(), 8)
    assert concat.get_feature_names_out()[4] == "noise__logp_0"


def test_training_rows_get_out_of_fold_log_probabilities():
    """On pure noise, a weakly regularised classifier fits its own training rows almost
    perfectly; the out-of-fold output stays at chance, as on new speakers."""
    rng = np.random.default_rng(1)
    speakers = np.repeat(np.arange(8), 20)
    y = np.tile(np.arange(4), 40)
    X = rng.normal(size=(160, 200))
    stack = FamilyStacking(families=[("all", range(200))],
                           classifier=LogisticRegression(max_iter=1000), param_grid={"C": [100.0]})
    out_of_fold = stack.fit_transform(X, y, groups=speakers).argmax(axis=1)
    in_sample = stack.transform(X).argmax(axis=1)
    assert balanced_accuracy_score(y, in_sample) > 0.95
    assert balanced_accuracy_score(y, out_of_fold) < 0.4


def test_a_method_by_name_stacks_each_modality_block():
    X, y, speakers = speakers_with_families(n_speakers=8)
    names = [f"f{j}" for j in range(45)]
    pipeline = build_pipeline("stack", [("audio", 5), ("video", 40)], input_names=names, seed=0,
                              stack__param_grid={"classifier__C": [0.1]})
    pipeline.steps.append(("classifier", LogisticRegression(max_iter=500)))
    train = speakers < 6
    pipeline.fit(X[train], y[train], groups=speakers[train])
    stack = pipeline.named_steps["stack"]
    assert [name for name, _ in stack.families_] == ["audio", "video"]
    assert [len(columns) for _, columns in stack.families_] == [5, 40]
    assert stack.classifier == "logreg" and stack.inner_scores_["audio"] > 0.6 > 0.3 > stack.inner_scores_["video"]
    held_out = pipeline.predict(pd.DataFrame(X[~train], columns=names))
    assert balanced_accuracy_score(y[~train], held_out) > 0.45  # chance 0.25


def test_unlabelled_arrays_and_dataframes():
    X, y, speakers = speakers_with_families(n_speakers=4)
    stack = FamilyStacking(families="column", classifier=LogisticRegression(max_iter=300), param_grid={"C": [1.0]})
    frame = pd.DataFrame(X[:, :4], columns=["mfcc_1_mean", "mfcc_1_std", "zcr_mean", "zcr_std"])
    stack.fit(frame, y, groups=speakers)
    assert [name for name, _ in stack.families_] == ["mfcc_1", "zcr"]
    one = FamilyStacking(classifier=LogisticRegression(max_iter=300), param_grid={"C": [1.0]}).fit(X, y)
    assert [name for name, _ in one.families_] == ["all"] and len(one.families_[0][1]) == 45


def test_bad_combination():
    X, y, speakers = speakers_with_families(n_speakers=4)
    with pytest.raises(ValueError, match="combine must be one of"):
        FamilyStacking(combine="vote").fit(X, y, groups=speakers)
    with pytest.raises(ValueError, match="unknown feature"):
        FamilyStacking(families=[("a", ["nope"])]).fit(pd.DataFrame(X[:, :2], columns=["p", "q"]), y)
    assert make_pipeline(FamilyStacking()) is not None
