"""The MobileNetV2-style CNN: a tiny image problem it must learn, reproducibility, encodings."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from classify.mobilenet import InvertedResidual, MobileNet, MobileNetClassifier
from classify.networks import NetworkInputError

SMALL = dict(blocks=((1, 8, 1, 1), (4, 16, 1, 2)), stem_channels=8, encoding_size=32, max_epochs=15,
             validation_fraction=0.0, learning_rate=1e-2)


def stripes(n, seed):
    """Two classes of 2 x 16 x 32 noise images: a bright band in the mel channel's low
    rows (class "low") or high rows (class "high"), at a random time."""
    rng = np.random.default_rng(seed)
    X = rng.normal(0.0, 0.3, (n, 2, 16, 32))
    y = np.array(["low", "high"] * (n // 2))
    for i, label in enumerate(y):
        rows = slice(2, 6) if label == "low" else slice(10, 14)
        start = rng.integers(0, 20)
        X[i, 0, rows, start:start + 12] += 1.5
    return X, y


@pytest.fixture(scope="module")
def fitted():
    X, y = stripes(60, 0)
    return MobileNetClassifier(**SMALL).fit(X, y)


def test_learns_where_the_band_is(fitted):
    X, y = stripes(40, 1)
    assert (fitted.predict(X) == y).mean() >= 0.9
    proba = fitted.predict_proba(X)
    assert proba.shape == (40, 2) and np.allclose(proba.sum(axis=1), 1.0)


def test_same_seed_same_model_and_encodings(fitted):
    X, y = stripes(60, 0)
    again = clone(fitted).fit(X, y)
    test, _ = stripes(10, 2)
    np.testing.assert_array_equal(again.predict_proba(test), fitted.predict_proba(test))
    codes = fitted.transform(test)
    assert codes.shape == (10, 32) and (codes >= 0).all()  # pooled ReLU6 activations
    np.testing.assert_array_equal(codes, again.transform(test))


def test_encodings_separate_the_classes(fitted):
    X, y = stripes(40, 3)
    codes = fitted.transform(X)
    low, high = codes[y == "low"].mean(axis=0), codes[y == "high"].mean(axis=0)
    spread = codes.std(axis=0).mean()
    assert np.linalg.norm(low - high) > 2 * spread


def test_inverted_residual_shapes_and_skip():
    block = InvertedResidual(8, 8, 1, 4)
    assert block.residual
    x = torch.randn(2, 8, 10, 12)
    assert block(x).shape == (2, 8, 10, 12)
    down = InvertedResidual(8, 16, 2, 4)
    assert not down.residual and down(x).shape == (2, 16, 5, 6)


def test_default_network_size_and_output():
    network = MobileNet(2, 8)
    n_parameters = sum(p.numel() for p in network.parameters())
    assert 40_000 < n_parameters < 120_000
    network.eval()
    assert network(torch.zeros(3, 2, 64, 128)).shape == (3, 8)


def test_bad_images_are_refused(fitted):
    with pytest.raises(NetworkInputError, match="images of shape"):
        MobileNetClassifier().fit(np.zeros((4, 16)), ["a", "b"] * 2)
    with pytest.raises(NetworkInputError, match="NaN"):
        MobileNetClassifier().fit(np.full((4, 2, 8, 8), np.nan), ["a", "b"] * 2)
    with pytest.raises(NetworkInputError, match="fitted on"):
        fitted.predict(np.zeros((2, 2, 16, 16)))
