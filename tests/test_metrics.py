"""Metrics against hand-computed cases and against scikit-learn's definitions."""

import numpy as np
import pytest
from sklearn import metrics as skm

from classify.metrics import (
    accuracy,
    accuracy_per_speaker,
    confusion_matrix,
    fold_scores,
    macro_f1,
    mean_and_std,
    one_vs_rest_accuracy,
    per_class_scores,
    summarise_folds,
    unweighted_average_recall,
    weighted_accuracy,
)
from extract.errors import EmofuseError

LABELS = ["a", "b", "c"]
# Hand-made 3-class case, rows true, columns predicted:
#        a  b  c
#   a    5  1  0     P = 6
#   b    2  3  1     P = 6
#   c    0  2  1     P = 3       total 15, column sums 7, 6, 2
CONFUSION = np.array([[5, 1, 0], [2, 3, 1], [0, 2, 1]])


def _labels_from(confusion):
    y_true, y_pred = [], []
    for (i, j), count in np.ndenumerate(confusion):
        y_true += [LABELS[i]] * count
        y_pred += [LABELS[j]] * count
    return np.array(y_true), np.array(y_pred)


def test_confusion_matrix_counts_true_rows_predicted_columns():
    y_true, y_pred = _labels_from(CONFUSION)
    np.testing.assert_array_equal(confusion_matrix(y_true, y_pred, LABELS), CONFUSION)
    np.testing.assert_array_equal(confusion_matrix(["b", "a"], ["a", "a"], ["a", "b"]), [[1, 0], [1, 0]])


def test_hand_computed_scores():
    assert accuracy(CONFUSION) == pytest.approx(9 / 15)
    # recall 5/6, 3/6, 1/3
    assert unweighted_average_recall(CONFUSION) == pytest.approx((5 / 6 + 1 / 2 + 1 / 3) / 3)
    scores = per_class_scores(CONFUSION)
    np.testing.assert_allclose(scores["precision"], [5 / 7, 1 / 2, 1 / 2])
    np.testing.assert_allclose(scores["recall"], [5 / 6, 1 / 2, 1 / 3])
    np.testing.assert_allclose(scores["f1"], [10 / 13, 1 / 2, 2 / 5])
    np.testing.assert_array_equal(scores["support"], [6, 6, 3])
    assert macro_f1(CONFUSION) == pytest.approx(217 / 390)


def test_weighted_accuracy_definitions():
    # speech community: WA = overall accuracy
    assert weighted_accuracy(CONFUSION, "speech") == pytest.approx(0.6)
    # Mamieva: (TP*N/P + TN)/2N per class: a (5*9/6 + 7)/18 = 29/36, b (3*9/6 + 6)/18 = 21/36,
    # c (1*12/3 + 11)/24 = 15/24; mean 145/216
    assert weighted_accuracy(CONFUSION, "mamieva") == pytest.approx(145 / 216)
    # Adel: one-vs-rest accuracies 12/15, 9/15, 12/15 weighted by 6/15, 6/15, 3/15 -> 162/225
    assert weighted_accuracy(CONFUSION, "adel") == pytest.approx(0.72)
    with pytest.raises(EmofuseError, match="mamieva"):
        weighted_accuracy(CONFUSION, "unknown")


def test_adel_reading_differs_from_support_weighted_recall():
    # Support-weighted recall is exactly overall accuracy; the one-vs-rest reading is not.
    scores = per_class_scores(CONFUSION)
    weighted_recall = np.sum(scores["recall"] * scores["support"]) / scores["support"].sum()
    assert weighted_recall == pytest.approx(accuracy(CONFUSION))
    assert weighted_accuracy(CONFUSION, "adel") != pytest.approx(accuracy(CONFUSION))


def test_perfect_and_absent_classes():
    perfect = np.diag([3, 4, 5])
    for score in (accuracy, unweighted_average_recall, macro_f1):
        assert score(perfect) == 1.0
    assert weighted_accuracy(perfect, "mamieva") == 1.0 and weighted_accuracy(perfect, "adel") == 1.0
    # class c never occurs in truth but is predicted once: UA averages over a and b only,
    # macro-F1 counts c (F1 = 0), as scikit-learn does
    y_true, y_pred = np.array(["a", "a", "b", "b"]), np.array(["a", "c", "b", "a"])
    confusion = confusion_matrix(y_true, y_pred, LABELS)
    assert unweighted_average_recall(confusion) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert macro_f1(confusion) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))


@pytest.mark.parametrize("seed", range(5))
def test_agrees_with_scikit_learn_on_random_labels(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.choice(LABELS, size=200, p=[0.6, 0.3, 0.1])
    y_pred = np.where(rng.random(200) < 0.5, y_true, rng.choice(LABELS, size=200))
    confusion = confusion_matrix(y_true, y_pred, LABELS)
    np.testing.assert_array_equal(confusion, skm.confusion_matrix(y_true, y_pred, labels=LABELS))
    assert accuracy(confusion) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert unweighted_average_recall(confusion) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert macro_f1(confusion) == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    precision, recall, f1, support = skm.precision_recall_fscore_support(y_true, y_pred, labels=LABELS)
    scores = per_class_scores(confusion)
    for mine, theirs in ((scores["precision"], precision), (scores["recall"], recall), (scores["f1"], f1)):
        np.testing.assert_allclose(mine, theirs)
    # Mamieva's WA is the mean of one-vs-rest balanced accuracies
    one_vs_rest = [skm.balanced_accuracy_score(y_true == c, y_pred == c) for c in LABELS]
    assert weighted_accuracy(confusion, "mamieva") == pytest.approx(np.mean(one_vs_rest))


def test_accuracy_per_speaker():
    y_true = ["a", "b", "a", "c", "c", "b"]
    y_pred = ["a", "a", "a", "c", "b", "b"]
    speakers = ["s2", "s2", "s1", "s1", "s1", "s3"]
    assert accuracy_per_speaker(y_true, y_pred, speakers) == {"s1": pytest.approx(2 / 3), "s2": 0.5, "s3": 1.0}
    with pytest.raises(EmofuseError):
        accuracy_per_speaker(y_true, y_pred, speakers[:-1])


def test_fold_scores_and_aggregation_over_folds():
    y_true, y_pred = _labels_from(CONFUSION)
    speakers = np.where(np.arange(len(y_true)) % 2, "even", "odd")
    fold = fold_scores(y_true, y_pred, LABELS, speakers)
    assert fold["n_test"] == 15 and fold["confusion"] == CONFUSION.tolist()
    assert fold["accuracy"] == pytest.approx(0.6) and fold["wa_adel"] == pytest.approx(0.72)
    assert fold["per_class"]["c"] == {"precision": 0.5, "recall": pytest.approx(1 / 3), "f1": pytest.approx(0.4),
                                      "support": 3}
    assert set(fold["per_speaker_accuracy"]) == {"even", "odd"}

    perfect = fold_scores(["a", "b", "c"], ["a", "b", "c"], LABELS)
    summary = summarise_folds([fold, perfect])
    assert summary["accuracy"] == pytest.approx(0.8)
    assert summary["accuracy_std"] == pytest.approx(np.std([0.6, 1.0], ddof=1))
    assert summary["ua"] == pytest.approx((10 / 18 + 1) / 2)
    np.testing.assert_array_equal(summary["confusion"], CONFUSION + np.eye(3, dtype=int))
    # pooled per-class: class c has 1 + 1 correct of 3 + 1 clips, predicted 2 + 1 times
    assert summary["per_class"]["c"]["recall"] == pytest.approx(2 / 4)
    assert summary["per_class"]["c"]["precision"] == pytest.approx(2 / 3)
    assert summary["per_class"]["a"]["support"] == 7

    assert mean_and_std([0.5, 0.7, 0.9]) == (pytest.approx(0.7), pytest.approx(0.2))
    assert mean_and_std([0.4]) == (0.4, 0.0)


def test_bad_input_raises_emofuse_error():
    with pytest.raises(EmofuseError, match=r"\['z'\]"):
        confusion_matrix(["a", "z"], ["a", "a"], LABELS)
    with pytest.raises(EmofuseError):
        confusion_matrix(["a", "b"], ["a"], LABELS)
    with pytest.raises(EmofuseError):
        accuracy(np.zeros((3, 3)))
    with pytest.raises(EmofuseError):
        mean_and_std([])


def test_one_vs_rest_accuracy_by_hand_and_as_the_omsn_identity():
    # a: FP 2 + FN 1 wrong -> 12/15; b: 3 + 3 -> 9/15; c: 1 + 2 -> 12/15
    assert one_vs_rest_accuracy(CONFUSION) == pytest.approx(33 / 45)
    assert one_vs_rest_accuracy(CONFUSION) == pytest.approx(1 - 2 * (1 - accuracy(CONFUSION)) / 3)
    rng = np.random.default_rng(0)
    confusion = rng.integers(0, 20, (8, 8))
    assert one_vs_rest_accuracy(confusion) == pytest.approx(1 - 2 * (1 - accuracy(confusion)) / 8)
    # OMSN-ER's printed 0.9908 is 0.9633 top-1 over 8 classes
    assert 1 - 2 * (1 - 0.9633) / 8 == pytest.approx(0.9908, abs=1e-4)
