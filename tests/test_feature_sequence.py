"""BiLSTM networks over a feature vector read as a sequence (Kirar et al.'s classifiers after selection)."""

import numpy as np
import pytest

from classify.classifiers import make_classifier
from classify.feature_sequence import FeatureSequenceClassifier, feature_sequences
from classify.networks import NetworkInputError


def test_feature_sequences_cut_rows_into_zero_padded_steps():
    X = np.arange(14, dtype=float).reshape(2, 7)
    steps = feature_sequences(X, 3)
    assert steps.shape == (2, 3, 3)
    np.testing.assert_array_equal(steps[1, 0], [7, 8, 9])
    np.testing.assert_array_equal(steps[0, 2], [6, 0, 0])
    assert feature_sequences(X, 1).shape == (2, 7, 1)
    with pytest.raises(NetworkInputError):
        feature_sequences(X, 0)


def tiny_problem(seed=0, n=240):
    """Three classes, each raising one of 16 features by 4 standard deviations."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.standard_normal((n, 16))
    X[np.arange(n), np.array([2, 9, 14])[y]] += 4.0
    return X, np.array(["a", "b", "c"])[y]


@pytest.mark.slow
@pytest.mark.parametrize("attention", [True, False])
def test_both_networks_learn_a_tiny_problem(attention):
    X, y = tiny_problem()
    model = FeatureSequenceClassifier(attention=attention, max_epochs=25, validation_fraction=0).fit(X[:180], y[:180])
    assert model.score(X[180:], y[180:]) > 0.9
    proba = model.predict_proba(X[180:])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert list(model.classes_) == ["a", "b", "c"]


def test_attention_adds_parameters_and_fits_are_reproducible():
    X, y = tiny_problem(n=60)
    fast = dict(max_epochs=2, validation_fraction=0)
    with_attention = FeatureSequenceClassifier(attention=True, **fast).fit(X, y)
    plain = FeatureSequenceClassifier(attention=False, **fast).fit(X, y)
    count = lambda m: sum(p.numel() for p in m.network_.parameters())  # noqa: E731
    # Q, K, V, W_O (64 x 64 each, W_O with bias) and the layer norm: 4 * 4096 + 64 + 128.
    assert count(with_attention) - count(plain) == 4 * 64 * 64 + 64 + 128
    again = FeatureSequenceClassifier(attention=True, **fast).fit(X, y)
    np.testing.assert_array_equal(with_attention.predict_proba(X), again.predict_proba(X))


def test_registry_names_and_bad_input():
    assert make_classifier("bilstm_sa_features").attention is True
    assert make_classifier("bilstm_features").attention is False
    X, y = tiny_problem(n=30)
    model = FeatureSequenceClassifier(max_epochs=1, validation_fraction=0).fit(X, y)
    with pytest.raises(NetworkInputError, match="16"):
        model.predict(X[:, :5])
    with pytest.raises(NetworkInputError):
        FeatureSequenceClassifier().fit(np.full((4, 3), np.inf), y[:4])
