"""Evaluation protocols: speaker-independent folds, LOSO, the random split, manifest splits."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extract.errors import EmofuseError
from fusion.protocol import PROTOCOLS, make_folds

EMOTIONS = ["angry", "happy", "neutral", "sad"]


def clip_table(n_speakers, clips_per_class=2, gender=True):
    rows = [
        {"clip_id": f"{s:02d}-{e}-{r}", "speaker": f"{s + 1:02d}", "label": emotion,
         "gender": "male" if s % 2 == 0 else "female"}
        for s in range(n_speakers) for e, emotion in enumerate(EMOTIONS) for r in range(clips_per_class)
    ]
    table = pd.DataFrame(rows)
    return table if gender else table.drop(columns="gender")


def check_partition(folds, clips):
    """Every speaker tested exactly once; no speaker on both sides; every clip on one side."""
    speaker_of = dict(zip(clips["clip_id"], clips["speaker"]))
    tested = [s for fold in folds for s in fold.test_speakers]
    assert sorted(tested) == sorted(clips["speaker"].unique())
    for fold in folds:
        train_speakers = {speaker_of[c] for c in fold.train_ids}
        test_speakers = {speaker_of[c] for c in fold.test_ids}
        assert not train_speakers & test_speakers
        assert test_speakers == set(fold.test_speakers)
        assert sorted(fold.train_ids + fold.test_ids) == sorted(clips["clip_id"])


@pytest.mark.parametrize("n_speakers, n_folds, per_fold", [(24, 6, 4), (8, 4, 2), (4, 4, 1)])
def test_speaker_folds_have_the_documented_sizes_and_balance_gender(n_speakers, n_folds, per_fold):
    clips = clip_table(n_speakers)
    folds = make_folds(clips, "speaker")
    assert len(folds) == n_folds
    check_partition(folds, clips)
    gender_of = dict(zip(clips["speaker"], clips["gender"]))
    for fold in folds:
        assert len(fold.test_speakers) == per_fold
        males = sum(gender_of[s] == "male" for s in fold.test_speakers)
        assert males == per_fold // 2 or per_fold == 1


def test_speaker_folds_are_deterministic_and_seeded():
    clips = clip_table(24)
    first, again = make_folds(clips, "speaker", seed=0), make_folds(clips, "speaker", seed=0)
    assert [f.to_dict() for f in first] == [f.to_dict() for f in again]
    other = make_folds(clips, "speaker", seed=1)
    assert [f.test_speakers for f in other] != [f.test_speakers for f in first]
    check_partition(other, clips)


@settings(max_examples=25, deadline=None)
@given(n_speakers=st.integers(2, 40), clips_per_class=st.integers(1, 3), gender=st.booleans(), seed=st.integers(0, 99))
def test_speaker_folds_always_partition_speakers(n_speakers, clips_per_class, gender, seed):
    clips = clip_table(n_speakers, clips_per_class, gender)
    folds = make_folds(clips, "speaker", seed=seed)
    check_partition(folds, clips)
    sizes = [len(f.test_speakers) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    assert 2 <= len(folds) <= min(n_speakers, 10)


def test_loso_tests_one_speaker_per_fold():
    clips = clip_table(5)
    folds = make_folds(clips, "loso")
    assert [f.test_speakers for f in folds] == [["01"], ["02"], ["03"], ["04"], ["05"]]
    check_partition(folds, clips)


def test_random_split_is_stratified_80_20_and_shares_speakers():
    clips = clip_table(8, clips_per_class=5)  # 160 clips, 40 per class
    (fold,) = make_folds(clips, "random", seed=3)
    assert len(fold.test_ids) == 32 and len(fold.train_ids) == 128
    test_labels = clips.set_index("clip_id").loc[fold.test_ids, "label"]
    assert test_labels.value_counts().to_dict() == {e: 8 for e in EMOTIONS}
    train_speakers = set(clips.set_index("clip_id").loc[fold.train_ids, "speaker"])
    assert train_speakers & set(fold.test_speakers)  # the very leak this split is kept to show
    assert make_folds(clips, "random", seed=3)[0].test_ids == fold.test_ids


def test_manifest_split_trains_on_train_and_dev():
    clips = clip_table(6).assign(split=lambda t: np.select(
        [t["speaker"] <= "04", t["speaker"] == "05"], ["train", "dev"], "test"))
    (fold,) = make_folds(clips, "manifest")
    assert fold.test_speakers == ["06"]
    assert len(fold.train_ids) == 5 * 8 and len(fold.test_ids) == 8


@pytest.mark.parametrize("clips, protocol, message", [
    (clip_table(4), "kfold", "known: " + ", ".join(PROTOCOLS)),
    (clip_table(1), "speaker", "at least 2 speakers"),
    (clip_table(4), "manifest", "'split' column"),
    (clip_table(4).assign(split="train"), "manifest", "'split' column"),
    (clip_table(4).assign(split="validation"), "manifest", "'split' column"),
    (clip_table(2, clips_per_class=1).iloc[:5], "random", "random protocol cannot split"),
    (clip_table(4).drop(columns="speaker"), "speaker", "lacks column(s) ['speaker']"),
])
def test_bad_requests_raise_clear_errors(clips, protocol, message):
    with pytest.raises(EmofuseError, match=re.escape(message)):
        make_folds(clips, protocol)


def test_too_many_folds_is_refused():
    with pytest.raises(EmofuseError, match=r"n_folds must be in \[2, 4\]"):
        make_folds(clip_table(4), "speaker", n_folds=5)
