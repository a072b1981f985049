"""One modality on the corpus's own split: figures, weighted F1, the speaker-overlap label."""

import json

import numpy as np
import pandas as pd
import pytest

from classify.holdout import evaluate_holdout, main, weighted_f1
from extract.errors import EmofuseError
from features.store import FAILURE_COLUMNS, write_store


def text_store(path, speakers_test):
    """Two well-separated classes in a 'text' family; train speakers A, B; test speakers given."""
    rng = np.random.default_rng(0)
    labels = np.array(["joy", "anger"] * 20)
    X = rng.normal(0, 1, (40, 4)).astype(np.float32)
    X[labels == "joy", 0] += 6
    split = ["train"] * 24 + ["dev"] * 6 + ["test"] * 10
    speakers = ["A", "B"] * 15 + list(speakers_test) * (10 // len(speakers_test))
    clips = pd.DataFrame({"clip_id": [f"c{i:02d}" for i in range(40)], "speaker": speakers, "label": labels,
                          "split": split, "text": ["words"] * 40})
    write_store(path, dataset="manifest", config={}, config_hash="x", versions={}, clips=clips,
                functionals={"text": ("text", X, [f"text_{i:03d}" for i in range(4)]),
                             "mfcc": ("audio", np.full((40, 2), np.nan, np.float32), ["m0", "m1"])},
                sequences={}, failures=pd.DataFrame(columns=FAILURE_COLUMNS))
    return path


def test_separable_text_and_overlap_label(tmp_path):
    result = evaluate_holdout(text_store(tmp_path / "a.h5", ["A", "C"]))
    assert (result["n_train"], result["n_test"]) == (30, 10)
    assert result["accuracy"] == 1.0 and result["weighted_f1"] == 1.0 and result["ua"] == 1.0
    assert result["families"] == ["text"]
    assert result["split"]["label"] == "speaker-overlapping split"
    assert result["split"]["shared_speakers"] == ["A"] and result["split"]["test_clips_by_shared"] == 0.5
    independent = evaluate_holdout(text_store(tmp_path / "b.h5", ["C", "D"]))
    assert independent["split"]["label"] == "speaker-independent split"


def test_weighted_f1_weights_by_support():
    per_class = {"a": {"f1": 1.0, "support": 3}, "b": {"f1": 0.0, "support": 1}, "c": {"f1": 0.5, "support": 0}}
    assert weighted_f1(per_class) == pytest.approx(0.75)


def test_cli_writes_json_and_refuses_missing_modality(tmp_path, capsys):
    store = text_store(tmp_path / "a.h5", ["A", "C"])
    assert main(["--store", str(store), "--out", str(tmp_path / "r.json")]) == 0
    assert "speaker-overlapping split" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["accuracy"] == 1.0
    assert main(["--store", str(store), "--modality", "video"]) == 2
    with pytest.raises(EmofuseError, match="not a vector classifier"):
        evaluate_holdout(store, classifier="bilstm_sa")
