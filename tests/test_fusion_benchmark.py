"""The fusion benchmark's summary: the same fold statistics as emofuse's reports."""

import numpy as np
import pytest

from classify.metrics import mean_and_std
from fusion.benchmark import summarise


def test_summary_gives_each_pipelines_fold_mean_sample_std_and_pooled_ua():
    y = np.array(["a", "a", "b", "b", "a", "b"])
    folds = [(np.array([2, 3, 4, 5]), np.array([0, 1])), (np.array([0, 1, 4, 5]), np.array([2, 3])),
             (np.array([0, 1, 2, 3]), np.array([4, 5]))]
    # Fold UAs (balanced accuracy): 1.0 (both right), 0.5 (one of the b's wrong, only b present), 0.5.
    predicted = [["a", "a"], ["b", "a"], ["b", "b"]]
    results = [{"pipeline": "concat", "test": test.tolist(), "predicted": p, "seconds": 1.0}
               for (_, test), p in zip(folds, predicted)]
    row = summarise(results, y, folds)["concat"]
    assert row["ua_per_fold"] == pytest.approx([1.0, 0.5, 0.5])
    assert row["ua_mean"] == pytest.approx(2 / 3)
    assert row["ua_std"] == pytest.approx(np.std([1.0, 0.5, 0.5], ddof=1))
    assert (row["ua_mean"], row["ua_std"]) == pytest.approx(mean_and_std(row["ua_per_fold"]))
    # Pooled over the six clips: a recalled 3 of 3, b recalled 1 of 3.
    assert row["ua_pooled"] == pytest.approx((1 + 1 / 3) / 2)
    assert row["n_folds"] == 3 and row["seconds"] == 3.0
