"""Classification metrics, each a pure function of a confusion matrix or of label arrays.

The emotion-recognition literature names its accuracies inconsistently, so every
definition here says which paper it follows:

* ``accuracy``: overall accuracy, trace / total.  The speech-emotion community calls it
  *weighted accuracy* (WA); Adel et al. (2023) call it *unweighted accuracy*.
* ``unweighted_average_recall``: mean per-class recall, "UA" (= balanced accuracy).
* ``weighted_accuracy(..., definition="mamieva")``: per class (TP·N/P + TN) / 2N
  (Mamieva et al. 2023), averaged over classes.
* ``weighted_accuracy(..., definition="adel")``: support-weighted mean of per-class
  (one-vs-rest) accuracy (Adel et al. 2023).
* ``one_vs_rest_accuracy``: the unweighted mean of per-class one-vs-rest accuracy, which
  OMSN-ER (Patil et al. 2024) prints as "accuracy".

A confusion matrix here has true classes on rows and predicted classes on columns.
"""

import numpy as np

from extract.errors import EmofuseError

WA_DEFINITIONS = ("speech", "mamieva", "adel")


def confusion_matrix(y_true, y_pred, labels) -> np.ndarray:
    """Count predictions per (true, predicted) class.

    Parameters
    ----------
    y_true, y_pred : array-like [shape=(n,)]
        True and predicted labels.
    labels : sequence, length k
        Class order of the rows and columns; every label in ``y_true`` and ``y_pred``
        must be one of them.

    Returns
    -------
    confusion : np.ndarray [shape=(k, k), dtype=int64]
        ``confusion[i, j]`` = number of clips of class ``labels[i]`` predicted as
        ``labels[j]``.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise EmofuseError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal-length 1-D")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({*y_true.tolist(), *y_pred.tolist()} - index.keys(), key=str)
    if unknown:
        raise EmofuseError(f"labels {unknown} are not in the class list {list(labels)}")
    confusion = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(confusion, ([index[t] for t in y_true.tolist()], [index[p] for p in y_pred.tolist()]), 1)
    return confusion


def _check_confusion(confusion) -> np.ndarray:
    confusion = np.asarray(confusion, dtype=np.float64)
    if confusion.ndim != 2 or confusion.shape[0] != confusion.shape[1] or confusion.sum() <= 0:
        raise EmofuseError(f"confusion must be a non-empty square matrix, got shape {confusion.shape}")
    return confusion


def _safe_divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    return np.divide(numerator, denominator, out=np.zeros_like(numerator), where=denominator > 0)


def accuracy(confusion) -> float:
    """Overall accuracy: correctly classified clips / all clips.

    Parameters
    ----------
    confusion : np.ndarray [shape=(k, k)]

    Returns
    -------
    accuracy : float in [0, 1]
    """
    confusion = _check_confusion(confusion)
    return float(np.trace(confusion) / confusion.sum())


def per_class_scores(confusion) -> dict:
    """Precision, recall and F1 of each class, one-vs-rest.

    Parameters
    ----------
    confusion : np.ndarray [shape=(k, k)]

    Returns
    -------
    scores : dict
        ``precision``, ``recall``, ``f1``: np.ndarray [shape=(k,)], 0 where undefined
        (no prediction of, or no clip of, that class); ``support``: np.ndarray
        [shape=(k,), dtype=int] clips per true class.
    """
    confusion = _check_confusion(confusion)
    true_positive = np.diag(confusion)
    precision = _safe_divide(true_positive, confusion.sum(axis=0))
    recall = _safe_divide(true_positive, confusion.sum(axis=1))
    f1 = _safe_divide(2 * precision * recall, precision + recall)
    return {"precision": precision, "recall": recall, "f1": f1,
            "support": confusion.sum(axis=1).astype(np.int64)}


def unweighted_average_recall(confusion) -> float:
    """UA: the mean of per-class recall (balanced accuracy).

    The mean runs over the classes that have clips, as scikit-learn's
    ``balanced_accuracy_score``: a class absent from a test fold has no recall.

    Parameters
    ----------
    confusion : np.ndarray [shape=(k, k)]

    Returns
    -------
    ua : float in [0, 1]
    """
    scores = per_class_scores(confusion)
    return float(scores["recall"][scores["support"] > 0].mean())


def macro_f1(confusion) -> float:
    """Unweighted mean of per-class F1 over the classes present in truth or prediction.

    Parameters
    ----------
    confusion : np.ndarray [shape=(k, k)]

    Returns
    -------
    f1 : float in [0, 1]
    """
    confusion = _check_confusion(confusion)
    seen = (confusion.sum(axis=0) + confusion.sum(axis=1)) > 0
    return float(per_class_scores(confusion)["f1"][seen].mean())


def weighted_accuracy(confusion, definition: str = "speech") -> float:
    """Weighted accuracy under one of the literature's definitions.

    Parameters
    ----------
    confusion : np.ndarray [shape=(k, k)]
    definition : {"speech", "mamieva", "adel"}
        ``"speech"``: the speech-emotion community's WA, overall accuracy.
        ``"mamieva"``: Mamieva et al. (2023), per class (TP·N/P + TN) / 2N with
        P = clips of the class and N = the other clips, i.e. the mean of sensitivity and
        specificity, then averaged over the classes that have clips.
        ``"adel"``: Adel et al. (2023), the support-weighted mean of per-class accuracy.
        Read with per-class accuracy = recall it reduces exactly to overall accuracy, so
        we take the one-vs-rest accuracy (TP + TN) / total of each class, the reading
        under which the two of their figures can differ.

    Returns
    -------
    wa : float in [0, 1]

    References
    ----------
    .. [1] Mamieva, D., Abdusalomov, A. B., Kutlimuratov, A., Muminov, B., & Whangbo,
           T. K. (2023). Multimodal emotion detection via attention-based fusion of
           extracted facial and speech features. Sensors, 23(12), 5475.
    .. [2] Adel, O., Fathalla, K. M., & Abo ElFarag, A. (2023). MM-EMOR: Multi-modal
           emotion recognition of social media using concatenated deep learning
           networks. Big Data and Cognitive Computing, 7(4), 164.
    """
    if definition not in WA_DEFINITIONS:
        raise EmofuseError(f"unknown weighted-accuracy definition {definition!r}; use one of {WA_DEFINITIONS}")
    confusion = _check_confusion(confusion)
    if definition == "speech":
        return accuracy(confusion)
    total = confusion.sum()
    # 1. Per class: TP, P (clips of the class), N (other clips), TN (other clips not
    #    predicted as the class).
    true_positive = np.diag(confusion)
    positives = confusion.sum(axis=1)
    negatives = total - positives
    true_negative = total - positives - confusion.sum(axis=0) + true_positive
    present = positives > 0
    if definition == "mamieva":
        # 2. WA_c = (TP·N/P + TN) / 2N = (TP/P + TN/N) / 2, averaged over classes with clips.
        per_class = (_safe_divide(true_positive, positives) + _safe_divide(true_negative, negatives)) / 2
        return float(per_class[present].mean())
    # 2. acc_c = (TP + TN) / total, weighted by the class's share of clips.
    return float(np.sum((true_positive + true_negative) / total * positives / total))


def one_vs_rest_accuracy(confusion) -> float:
    """Mean over classes of the binary accuracy ``(TP + TN) / total`` of "class c or not".

    Every misclassified clip is a false negative of its class and a false positive of another,
    so with k classes this is ``1 - 2 (1 - accuracy) / k``: it rises towards 1 as classes are
    added, whatever the classifier.  Papers that print it as "accuracy" (Patil et al. 2024,
    OMSN-ER: 0.9908 for 8 classes, i.e. 0.9633 top-1) are read back through this identity.

    Parameters
    ----------
    confusion : np.ndarray [shape=(k, k)]

    Returns
    -------
    float in [0, 1]
    """
    confusion = _check_confusion(confusion)
    total = confusion.sum()
    true_positive = np.diag(confusion)
    wrong = confusion.sum(axis=0) + confusion.sum(axis=1) - 2 * true_positive  # FP + FN of each class
    return float(np.mean(1 - wrong / total))


def accuracy_per_speaker(y_true, y_pred, speakers) -> dict:
    """Overall accuracy of the clips of each speaker.

    Parameters
    ----------
    y_true, y_pred, speakers : array-like [shape=(n,)]

    Returns
    -------
    accuracy : dict[str, float]
        Speaker (as str, sorted) -> fraction of that speaker's clips classified correctly.
    """
    y_true, y_pred, speakers = (np.asarray(a) for a in (y_true, y_pred, speakers))
    if not y_true.shape == y_pred.shape == speakers.shape:
        raise EmofuseError(f"y_true {y_true.shape}, y_pred {y_pred.shape} and speakers {speakers.shape} differ")
    correct = y_true == y_pred
    return {str(s): float(correct[speakers == s].mean()) for s in sorted(set(speakers.tolist()), key=str)}


def fold_scores(y_true, y_pred, labels, speakers=None) -> dict:
    """Every figure of one test fold, JSON-ready.

    Parameters
    ----------
    y_true, y_pred : array-like [shape=(n,)]
    labels : sequence, length k
        Class order of the confusion matrix and the per-class lists.
    speakers : array-like [shape=(n,)], optional
        Speaker of each clip, for ``per_speaker_accuracy``.

    Returns
    -------
    scores : dict
        ``n_test``, ``accuracy``, ``ua``, ``macro_f1``, ``wa_mamieva``, ``wa_adel``
        (floats), ``per_class`` ({label: {precision, recall, f1, support}}),
        ``confusion`` (k x k list of int, rows true) and, with speakers,
        ``per_speaker_accuracy``.
    """
    confusion = confusion_matrix(y_true, y_pred, labels)
    per_class = per_class_scores(confusion)
    scores = {
        "n_test": int(confusion.sum()),
        "accuracy": accuracy(confusion),
        "ua": unweighted_average_recall(confusion),
        "macro_f1": macro_f1(confusion),
        "wa_mamieva": weighted_accuracy(confusion, "mamieva"),
        "wa_adel": weighted_accuracy(confusion, "adel"),
        "per_class": {str(label): {key: per_class[key][i].item() for key in per_class}
                      for i, label in enumerate(labels)},
        "confusion": confusion.tolist(),
    }
    if speakers is not None:
        scores["per_speaker_accuracy"] = accuracy_per_speaker(y_true, y_pred, speakers)
    return scores


def mean_and_std(values) -> tuple:
    """Mean and spread of a figure over folds.

    Parameters
    ----------
    values : array-like [shape=(n_folds,)]

    Returns
    -------
    mean, std : float
        ``std`` is the sample standard deviation (ddof=1), the spread a paper reports
        for cross-validation folds; 0 for a single fold.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise EmofuseError(f"need a non-empty 1-D list of fold values, got shape {values.shape}")
    std = values.std(ddof=1) if values.size > 1 else 0.0
    return float(values.mean()), float(std)


def summarise_folds(folds: list) -> dict:
    """Mean and std over folds of each scalar figure of ``fold_scores``.

    Parameters
    ----------
    folds : list of dict
        One ``fold_scores`` result per fold.

    Returns
    -------
    summary : dict
        ``accuracy``, ``ua``, ``macro_f1``, ``wa_mamieva``, ``wa_adel`` (fold means) and
        each with ``_std``; ``confusion``: the confusion matrices summed over folds;
        ``per_class``: precision, recall, F1 and support of that pooled confusion.
    """
    summary = {}
    for key in ("accuracy", "ua", "macro_f1", "wa_mamieva", "wa_adel"):
        summary[key], summary[f"{key}_std"] = mean_and_std([fold[key] for fold in folds])
    confusion = np.sum([fold["confusion"] for fold in folds], axis=0)
    pooled = per_class_scores(confusion)
    summary["confusion"] = confusion.tolist()
    summary["per_class"] = {label: {key: pooled[key][i].item() for key in pooled}
                            for i, label in enumerate(folds[0]["per_class"])}
    return summary
