"""OMSN-ER: BiLSTM encoders, dense residual fusion and the self-attention CNN, on tiny problems."""

import numpy as np
import pytest
import torch
from sklearn.base import clone

from classify.classifiers import make_classifier
from classify.omsn import (
    LEARNING_RATES,
    DenseResidualFusion,
    OmsnClassifier,
    OmsnNetwork,
    SelfAttention2d,
    SequenceEncoder,
    mgo_tuned_omsn,
)
from extract.errors import EmofuseError

LABELS = np.array(["angry", "calm", "happy", "sad"])
SMALL = dict(hidden_size=16, fusion_widths=(8, 16, 32), cnn_channels=16, frame_stride=1, learning_rate=3e-3,
             max_epochs=15, random_state=0)


def split_information(n, seed, same_clock=False):
    """Four classes: audio feature 0 gives one bit of the label, video feature 2 the other.

    Audio sequences have 12-30 frames of 5 features, video ones 4-10 frames of 7 (or the
    audio's length with ``same_clock``); neither modality alone can beat 50 %.
    """
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 4, n)
    X = []
    for code in codes:
        audio = rng.normal(size=(rng.integers(12, 31), 5))
        audio[:, 0] += 1.5 * (2 * (code // 2) - 1)
        video = rng.normal(size=(len(audio) if same_clock else rng.integers(4, 11), 7))
        video[:, 2] += 1.5 * (2 * (code % 2) - 1)
        X.append((audio, video))
    return X, LABELS[codes]


def accuracy(model, X, y):
    return np.mean(model.predict(X) == y)


@pytest.fixture(scope="module")
def model():
    X, y = split_information(120, seed=0)
    return OmsnClassifier(**SMALL).fit(X, y)


def test_learns_a_label_that_needs_both_modalities(model):
    X, y = split_information(120, seed=1)
    assert accuracy(model, X, y) > 0.9
    # Replace the video by another clip's: only the audio bit is left, about half right.
    shuffled = [(audio, X[(i + 1) % len(X)][1]) for i, (audio, _) in enumerate(X)]
    assert accuracy(model, shuffled, y) < 0.75


def test_shuffled_labels_give_chance_accuracy():
    X, y = split_information(120, seed=2)
    model = OmsnClassifier(**SMALL).fit(X, np.random.default_rng(0).permutation(y))
    X_test, y_test = split_information(120, seed=3)
    assert accuracy(model, X_test, y_test) < 0.45  # chance is 1/4


def test_probabilities_are_independent_of_batch_and_padding(model):
    X, _ = split_information(3, seed=4)
    longer = [(np.vstack([audio] * 4), np.vstack([video] * 3)) for audio, video in X]
    alone = model.predict_proba(X[:1])
    batched = model.predict_proba(X[:1] + longer)
    np.testing.assert_allclose(batched[0], alone[0], atol=1e-6)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(model.classes_, LABELS)


def test_same_seed_same_probabilities():
    X, y = split_information(40, seed=5)
    fast = {**SMALL, "max_epochs": 2}
    first = OmsnClassifier(**fast).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(OmsnClassifier(**fast).fit(X, y).predict_proba(X), first)
    assert not np.allclose(OmsnClassifier(**{**fast, "random_state": 1}).fit(X, y).predict_proba(X), first)


def test_blocks_split_a_fused_sequence_like_per_modality_tuples():
    X, y = split_information(40, seed=6, same_clock=True)
    fused = [np.hstack(sample) for sample in X]
    fast = {**SMALL, "max_epochs": 2}
    tuples = OmsnClassifier(**fast).fit(X, y)
    blocks = OmsnClassifier(blocks=(5, 7), **fast).fit(fused, y)
    assert blocks.n_features_in_ == tuples.n_features_in_ == (5, 7)
    np.testing.assert_allclose(blocks.predict_proba(fused), tuples.predict_proba(X), atol=1e-6)


def test_one_modality_and_nan_frames():
    X, y = split_information(40, seed=7)
    audio_only = [audio for audio, _ in X]
    audio_only[0][3] = np.nan  # imputed with the training mean
    model = OmsnClassifier(**{**SMALL, "max_epochs": 2}).fit(audio_only, y)
    assert model.n_features_in_ == (5,)
    assert np.isfinite(model.predict_proba(audio_only)).all()


# --- the parts -----------------------------------------------------------------------------------


def test_self_attention_starts_as_identity_and_follows_the_sagan_formula():
    torch.manual_seed(0)
    block = SelfAttention2d(16)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(block(x), x)  # gamma = 0
    beta = block.attention(x)
    assert beta.shape == (2, 25, 25)
    torch.testing.assert_close(beta.sum(dim=2), torch.ones(2, 25))
    with torch.no_grad():
        block.gamma.fill_(0.5)
        f, g, h = (conv(x).flatten(2) for conv in (block.query, block.key, block.value))
        assert f.shape[1] == g.shape[1] == 2  # C / 8 channels for queries and keys
        # o_j = sum_i softmax_i(f_i . g_j) h_i
        expected_beta = torch.softmax(torch.einsum("bci,bcj->bji", f, g), dim=2)
        o = torch.einsum("bji,bci->bcj", expected_beta, h).view(2, 16, 5, 5)
        torch.testing.assert_close(block(x), 0.5 * o + x)


@pytest.mark.parametrize("n_modalities", [1, 2])
def test_fusion_keeps_the_10_by_10_map(n_modalities):
    fusion = DenseResidualFusion(n_modalities, widths=(8, 16, 32))
    assert fusion(torch.randn(3, n_modalities, 10, 10)).shape == (3, 8, 10, 10)


def test_encoder_maps_any_length_to_a_bounded_10_by_10_map():
    encoder = SequenceEncoder(n_features=6, hidden_size=8)
    x = torch.randn(3, 12, 6)
    maps = encoder(x, torch.tensor([12, 5, 1]))
    assert maps.shape == (3, 1, 10, 10) and maps.abs().max() <= 1
    torch.testing.assert_close(encoder(x[1:2, :5], torch.tensor([5])), maps[1:2])


@pytest.mark.parametrize("n_features, expected", [((132,), 147_835), ((132, 1764), 614_776)])
def test_parameter_count_of_the_default_network(n_features, expected):
    # 132 audio values per frame (MFCC + deltas, energy, ZCR, pitch, spectral, envelope, MCR);
    # 1764 HOG values per video frame: its BiLSTM holds most of the video branch.
    network = OmsnNetwork(n_features, n_classes=8)
    assert sum(p.numel() for p in network.parameters()) == expected
    hidden = 32
    for encoder, d in zip(network.encoders, n_features):
        # Two LSTMs of 4 gates (input and recurrent weights, two biases), then 2h -> 100.
        lstm = 4 * hidden * (d + hidden) + 8 * hidden
        assert sum(p.numel() for p in encoder.parameters()) == 2 * lstm + 2 * hidden * 100 + 100


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")  # 6-clip inner folds
def test_learning_rate_tuned_inside_the_training_speakers():
    X, y = split_information(24, seed=8)
    speakers = np.arange(24) % 4
    small = {key: value for key, value in SMALL.items() if key not in ("learning_rate", "random_state")}
    model = mgo_tuned_omsn(0, **{**small, "max_epochs": 1}).fit(X, y, groups=speakers)
    rate = model.best_params_["learning_rate"]
    assert LEARNING_RATES[0] <= rate <= LEARNING_RATES[1]
    assert model.best_estimator_.learning_rate == rate
    assert len(model.trials_) <= 15 and model.best_score_ == max(score for _, score in model.trials_)
    assert model.predict_proba(X).shape == (24, 4)
    with pytest.raises(EmofuseError, match="groups="):
        model.fit(X, y)


def test_registered_and_cloneable():
    model = make_classifier("omsn", random_state=3)
    assert isinstance(model, OmsnClassifier) and model.random_state == 3
    copy = clone(model).set_params(learning_rate=1e-2)
    assert copy.get_params()["learning_rate"] == 1e-2 and not hasattr(copy, "classes_")
    tuned = make_classifier("omsn-mgo", random_state=3)
    assert tuned.estimator.random_state == 3 and tuned.space[0].name == "learning_rate"


@pytest.mark.parametrize("params, X, message", [
    ({}, [], "empty"),
    ({}, [(np.zeros((5, 3)), np.zeros((4, 2))), (np.zeros((5, 3)),)], "same 1 or 2"),
    ({}, [(np.zeros((5, 3)),) * 3] * 2, "same 1 or 2"),
    ({"blocks": (2, 2)}, [np.zeros((5, 3))] * 2, "blocks"),
    ({"blocks": (2, 1)}, [(np.zeros((5, 3)), np.zeros((4, 2)))] * 2, "not both"),
    ({}, [(np.zeros((5, 3)), np.zeros((0, 2)))] * 2, "sequence 0"),
    ({"fusion_widths": (8, 10, 32)}, [np.zeros((5, 3))] * 2, "multiple of 4"),
])
def test_bad_input_raises_emofuse_error(params, X, message):
    with pytest.raises(EmofuseError, match=message):
        OmsnClassifier(**params).fit(X, ["a", "b"][: len(X)])


def test_predict_checks_each_modality_width(model):
    with pytest.raises(EmofuseError, match=r"fitted on \(5, 7\)"):
        model.predict([(np.zeros((10, 5)), np.zeros((4, 6)))])
