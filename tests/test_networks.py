"""Tests for the torch network classifiers on small synthetic problems with known structure."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from classify.networks import (
    AttentionFusionClassifier,
    BiLstmAttentionClassifier,
    FerCnn,
    FerCnnClassifier,
    NetworkInputError,
    _average_frames,
    scaled_dot_product_attention,
)
from extract.errors import EmofuseError

EMOTIONS = np.array(["angry", "happy", "sad"])


def tabular(n, seed, informative=slice(0, 3), n_features=12, shift=3.0):
    """Three string classes whose mean differs on the ``informative`` columns only."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, n)
    X = rng.normal(size=(n, n_features))
    X[:, informative] += (codes[:, None] - 1) * shift
    return X, EMOTIONS[codes]


def ramps(n, seed, n_features=4):
    """Sequences of 15-40 frames whose class is the slope of feature 0 (rising, falling, flat).

    Every class has the same per-feature mean, so only the temporal order tells them apart.
    """
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 3, n)
    X = []
    for code in codes:
        t = rng.integers(15, 41)
        x = rng.normal(scale=0.5, size=(t, n_features))
        x[:, 0] += (1 - code) * np.linspace(-2, 2, t)
        X.append(x)
    return X, EMOTIONS[codes]


def accuracy(model, X, y):
    return np.mean(model.predict(X) == y)


FAST_CNN = dict(max_epochs=15, random_state=0)
FAST_LSTM = dict(hidden_size=16, n_heads=2, frame_stride=1, max_epochs=25, random_state=0)


@pytest.fixture(scope="module")
def cnn():
    X, y = tabular(150, seed=0)
    return FerCnnClassifier(**FAST_CNN).fit(X, y)


@pytest.fixture(scope="module")
def lstm():
    X, y = ramps(150, seed=0)
    return BiLstmAttentionClassifier(**FAST_LSTM).fit(X, y)


@pytest.fixture(scope="module")
def fusion_by_modality():
    """One fusion model per informative modality (audio = first 10 columns, video = next 12)."""
    models = {}
    for modality, columns in [("audio", slice(0, 3)), ("video", slice(10, 13))]:
        X, y = tabular(200, seed=1, informative=columns, n_features=22, shift=1.5)
        models[modality] = AttentionFusionClassifier(blocks=(10, 12)).fit(X, y)
    return models


# --- learning an easy problem, and not learning shuffled labels ---------------------------------


def test_fercnn_learns_class_means(cnn):
    X, y = tabular(150, seed=10)
    assert accuracy(cnn, X, y) > 0.9


def test_bilstm_attention_learns_temporal_pattern(lstm):
    X, y = ramps(120, seed=10)
    assert accuracy(lstm, X, y) > 0.9


def test_attention_fusion_learns_informative_block(fusion_by_modality):
    for modality, columns in [("audio", slice(0, 3)), ("video", slice(10, 13))]:
        X, y = tabular(150, seed=11, informative=columns, n_features=22, shift=1.5)
        assert accuracy(fusion_by_modality[modality], X, y) > 0.75


@pytest.mark.parametrize(
    "make_model, make_data",
    [
        (lambda: FerCnnClassifier(**FAST_CNN), tabular),
        (lambda: BiLstmAttentionClassifier(**FAST_LSTM), ramps),
        (lambda: AttentionFusionClassifier(blocks=(4, 8)), tabular),
    ],
    ids=["fercnn", "bilstm", "fusion"],
)
def test_shuffled_labels_give_chance_accuracy(make_model, make_data):
    X, y = make_data(150, seed=2)
    shuffled = np.random.default_rng(0).permutation(y)
    model = make_model().fit(X, shuffled)
    X_test, y_test = make_data(150, seed=12)
    assert accuracy(model, X_test, y_test) < 0.55  # chance is 1/3


# --- determinism and the scikit-learn contract ---------------------------------------------------


@pytest.mark.parametrize(
    "make_model, make_data",
    [
        (lambda seed: FerCnnClassifier(max_epochs=3, random_state=seed), tabular),
        (lambda seed: BiLstmAttentionClassifier(**{**FAST_LSTM, "max_epochs": 3,
                                                   "random_state": seed}), ramps),
        (lambda seed: AttentionFusionClassifier(blocks=(4, 8), max_epochs=3,
                                                random_state=seed), tabular),
    ],
    ids=["fercnn", "bilstm", "fusion"],
)
def test_same_seed_same_probabilities(make_model, make_data):
    X, y = make_data(60, seed=4)
    X_test, _ = make_data(30, seed=24)
    first = make_model(0).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(make_model(0).fit(X, y).predict_proba(X_test), first)
    assert not np.allclose(make_model(1).fit(X, y).predict_proba(X_test), first)


def test_fit_leaves_torch_global_state_alone():
    threads, rng_state = torch.get_num_threads(), torch.get_rng_state()
    X, y = tabular(60, seed=3)
    FerCnnClassifier(max_epochs=2, n_threads=1).fit(X, y)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), rng_state)


def test_string_classes_and_probabilities(cnn, lstm):
    for model, (X, _) in [(cnn, tabular(50, seed=30)), (lstm, ramps(50, seed=30))]:
        np.testing.assert_array_equal(model.classes_, EMOTIONS)
        proba = model.predict_proba(X)
        assert proba.shape == (50, 3)
        assert np.all(proba >= 0)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_array_equal(model.predict(X), EMOTIONS[proba.argmax(axis=1)])


def test_params_round_trip_through_clone():
    model = AttentionFusionClassifier(blocks=(3, 5), encoding_size=8, random_state=7)
    copy = clone(model).set_params(hidden_units=16)
    assert copy.get_params()["blocks"] == (3, 5)
    assert copy.get_params()["hidden_units"] == 16
    assert not hasattr(copy, "classes_")


def test_nan_is_imputed_with_training_mean(cnn):
    X, _ = tabular(20, seed=40)
    with_nan = X.copy()
    with_nan[:, [1, 5]] = np.nan
    filled = X.copy()
    filled[:, [1, 5]] = cnn.mean_[[1, 5]]
    np.testing.assert_allclose(cnn.predict_proba(with_nan), cnn.predict_proba(filled), atol=1e-6)


# --- FERCNN architecture -----------------------------------------------------------------------


@pytest.mark.parametrize("n_features", [100, 400])
def test_fercnn_parameter_count_near_paper(n_features):
    # Conv layers 142,624 + dense 32*1*256+256 + output 256*8+8: both lengths pool down to 1.
    n_parameters = sum(p.numel() for p in FerCnn(n_features, n_classes=8).parameters())
    assert n_parameters == 153_128
    assert 140_000 < n_parameters < 160_000


@pytest.mark.parametrize("n_features", [1, 2, 3, 5, 9, 30, 250])
def test_fercnn_skips_pools_for_short_inputs(n_features):
    network = FerCnn(n_features, n_classes=4).eval()
    assert network(torch.zeros(3, n_features)).shape == (3, 4)


# --- sequences: padding, masking and frame averaging ---------------------------------------------


def test_padding_does_not_change_a_sequence_output(lstm):
    X, _ = ramps(2, seed=50)
    short = X[0][:20]
    longer = np.vstack([X[1]] * 3)  # 30-120 frames, longer than `short`
    alone = lstm.predict_proba([short])
    batched = lstm.predict_proba([short, longer])
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-6)


def test_masked_attention_matches_torch_reference():
    rng = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 6, 4, generator=rng) for _ in range(3))
    key_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])[:, None, :]
    expected = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=key_mask[:, :, None, :]
    )
    got = scaled_dot_product_attention(q, k, v, key_mask)
    torch.testing.assert_close(got, expected)


def test_masked_attention_averages_real_values_for_equal_keys():
    q = torch.ones(1, 5, 2)
    k = torch.ones(1, 5, 2)
    v = torch.arange(5.0).reshape(1, 5, 1).expand(1, 5, 2)
    mask = torch.tensor([[True, True, True, False, False]])
    out = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, torch.ones(1, 5, 2))  # mean of 0, 1, 2


def test_frame_stride_averages_runs_of_frames():
    x = np.arange(14, dtype=float).reshape(7, 2)
    np.testing.assert_array_equal(
        _average_frames(x, 3), [[2.0, 3.0], [8.0, 9.0], [12.0, 13.0]]
    )
    assert len(_average_frames(np.zeros((350, 5)), 4)) == 88  # 3.5 s at 100 frames/s


# --- attention fusion weights -------------------------------------------------------------------


def test_modality_weights_are_convex_and_favour_the_informative_block(fusion_by_modality):
    for modality, informative_column in [("audio", 0), ("video", 1)]:
        X, _ = tabular(100, seed=60, n_features=22)
        weights = fusion_by_modality[modality].modality_weights(X)
        assert weights.shape == (100, 2)
        assert np.all(weights >= 0)
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-6)
        assert weights[:, informative_column].mean() > 0.65


def test_fused_encoding_is_weighted_sum_of_encodings(fusion_by_modality):
    network = fusion_by_modality["audio"].network_
    x = torch.randn(7, 22)
    with torch.no_grad():
        fused, omega = network.fuse(x)
        a_speech = network.speech_encoder(x[:, :10])
        a_face = network.face_encoder(x[:, 10:])
    torch.testing.assert_close(fused, omega[:, :1] * a_speech + omega[:, 1:] * a_face)


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "model, X, y, message",
    [
        (FerCnnClassifier(), np.zeros((0, 5)), [], "0 sample"),
        (FerCnnClassifier(), np.zeros((4, 3, 2)), [0, 1, 0, 1], "dim 3"),
        (FerCnnClassifier(), [[0.0, np.inf], [1.0, 2.0]], [0, 1], "infinity"),
        (FerCnnClassifier(), np.zeros((4, 3)), [0, 1, 0], "3 labels for 4 samples"),
        (FerCnnClassifier(), np.zeros((4, 3)), ["a"] * 4, "at least 2"),
        (FerCnnClassifier(), np.zeros((4, 3)), [0.1, 0.2, 0.3, 0.4], "continuous"),
        (AttentionFusionClassifier(blocks=(3, 3)), np.zeros((4, 5)), [0, 1, 0, 1], "blocks"),
        (AttentionFusionClassifier(blocks=(5, 0)), np.zeros((4, 5)), [0, 1, 0, 1], "blocks"),
        (AttentionFusionClassifier(), np.zeros((4, 5)), [0, 1, 0, 1], "blocks"),
        (BiLstmAttentionClassifier(), [], [], "empty"),
        (BiLstmAttentionClassifier(), [np.zeros((5, 3)), np.zeros((4, 2))], [0, 1], "sequence 1"),
        (BiLstmAttentionClassifier(), [np.zeros((5, 3)), np.zeros((0, 3))], [0, 1], "sequence 1"),
        (BiLstmAttentionClassifier(), np.zeros((2, 5)), [0, 1], "3-D"),
        (BiLstmAttentionClassifier(n_heads=5), [np.zeros((5, 3))] * 2, [0, 1], "n_heads"),
    ],
)
def test_bad_input_raises_emofuse_error(model, X, y, message):
    with pytest.raises(EmofuseError, match=message):
        model.fit(X, y)


def test_predict_checks_feature_count(cnn, lstm):
    with pytest.raises(NetworkInputError, match="expecting 12 features"):
        cnn.predict(np.zeros((2, 11)))
    with pytest.raises(NetworkInputError, match="fitted on 4"):
        lstm.predict([np.zeros((10, 3))])
