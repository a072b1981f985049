"""Mamieva et al.'s encoders, attention fusion and classifier on problems with known answers."""

import numpy as np
import pytest
import torch

from classify.mamieva import FaceEncoder, MamievaClassifier, MamievaNetwork, MfccEncoder, WaveformEncoder, fit_length
from classify.networks import NetworkInputError
from extract.errors import EmofuseError

LABELS = ("angry", "calm", "sad")
RATE = 8000
# Small inputs: 24 MFCC steps of 13 coefficients, 0.5 s of waveform, 4 faces of 16 px.
SMALL = dict(mfcc_stride=1, mfcc_frames=24, waveform_samples=4000, waveform_strides=(2, 1, 1), face_channels=(4, 8, 8),
             encoding_size=32, hidden_units=32, dropout=0.1, max_epochs=20, patience=20, validation_fraction=0.0,
             learning_rate=3e-3, batch_size=16)


def clips(n, informative, seed=0, faces=True):
    """``n`` clips of the three LABELS; only the ``informative`` input tells them apart.

    waveform: a tone of 250, 800 or 2000 Hz; mfcc: coefficient 4k raised for class k (apart from
    the others after the 2x2 max-pooling); faces: a
    bright band across the upper, middle or lower part of the crop.  The other inputs are noise of the same law for
    every class.  Lengths vary from clip to clip.
    """
    rng = np.random.default_rng(seed)
    X, y = [], []
    for i in range(n):
        label = i % 3
        mfcc = rng.normal(size=(int(rng.integers(18, 32)), 13))
        samples = int(rng.integers(3000, 5000))
        waveform = 0.3 * rng.normal(size=samples)
        face = rng.uniform(0, 1, size=(4, 16, 16)) if faces else None
        if informative == "waveform":
            waveform += np.sin(2 * np.pi * (250, 800, 2000)[label] * np.arange(samples) / RATE + rng.uniform(0, 6))
        elif informative == "mfcc":
            mfcc[:, 4 * label] += 2.0
        elif informative == "faces":
            face[:, 5 * label : 5 * label + 4] += 1.0
        X.append((mfcc, waveform, face))
        y.append(LABELS[label])
    return X, np.array(y)


def test_fit_length_keeps_the_middle_or_pads_both_sides():
    x = np.arange(10.0)
    np.testing.assert_array_equal(fit_length(x, 4), [3, 4, 5, 6])
    np.testing.assert_array_equal(fit_length(x[:3], 6), [0, 0, 1, 2, 0, 0])
    padded = fit_length(np.ones((3, 2)), 6)
    assert padded.shape == (6, 2) and padded[:, 0].tolist() == [0, 1, 1, 1, 0, 0]


def test_encoder_and_network_shapes_and_attention_weights():
    torch.manual_seed(0)
    assert MfccEncoder(13, 8)(torch.zeros(2, 1, 24, 13)).shape == (2, 3 * 8 * 7)
    waveform = WaveformEncoder(4000, strides=(2, 1, 1))
    assert waveform(torch.zeros(2, 1, 4000)).shape == (2, 64) and waveform.size == 64
    assert FaceEncoder((4, 8, 8))(torch.zeros(2, 5, 32, 32)).shape == (2, 4 * 8)
    net = MamievaNetwork(3, 13, 4000, faces=True, waveform_strides=(2, 1, 1), face_channels=(4, 8, 8),
                         encoding_size=16).eval()
    inputs = torch.randn(4, 1, 24, 13), torch.randn(4, 1, 4000), torch.randn(4, 4, 16, 16)
    has_face = torch.tensor([True, True, False, True])
    fused, omega = net.fuse(*inputs, has_face)
    assert net(*inputs, has_face).shape == (4, 3) and fused.shape == (4, 16)
    np.testing.assert_allclose(omega.sum(dim=1).detach().numpy(), 1.0, rtol=1e-6)
    assert omega[2].tolist() == [1.0, 0.0] and (omega[[0, 1, 3]] > 0).all()
    # Eq. 6: F is the omega-weighted sum of the two encodings.
    a_speech = net.speech_dense(torch.cat([net.mfcc_encoder(inputs[0]), net.waveform_encoder(inputs[1])], dim=1))
    a_face = net.face_dense(net.face_encoder(inputs[2]))
    expected = omega[:, :1] * a_speech + omega[:, 1:] * a_face
    np.testing.assert_allclose(fused.detach().numpy(), expected.detach().numpy(), atol=1e-6)


def test_a_waveform_too_short_for_the_layers_is_refused():
    with pytest.raises(NetworkInputError, match="too short"):
        WaveformEncoder(4000)  # strides 8, 2, 1 leave no step after the third pool


@pytest.mark.slow
@pytest.mark.parametrize("informative", ["waveform", "mfcc"])
def test_the_speech_branch_alone_learns_from_each_of_its_inputs(informative):
    X, y = clips(60, informative, faces=False)
    X_test, y_test = clips(30, informative, seed=1, faces=False)
    model = MamievaClassifier(**SMALL).fit(X, y)
    assert model.face_shape_ is None and model.network_.face_encoder is None
    assert np.mean(model.predict(X_test) == y_test) >= 0.9
    np.testing.assert_array_equal(model.modality_weights(X_test[:3]), [[1.0, 0.0]] * 3)


@pytest.mark.slow
def test_faces_are_learnt_when_the_speech_carries_nothing():
    X, y = clips(60, "faces")
    X_test, y_test = clips(30, "faces", seed=1)
    model = MamievaClassifier(**SMALL).fit(X, y)
    assert model.face_shape_ == (4, 16, 16)
    assert np.mean(model.predict(X_test) == y_test) >= 0.9
    # Without its faces a clip falls back on the (uninformative) speech encoding alone.
    weights = model.modality_weights([(m, w, None) for m, w, _ in X_test[:4]])
    np.testing.assert_array_equal(weights, [[1.0, 0.0]] * 4)


def test_fitting_is_deterministic_and_predictions_do_not_depend_on_the_batch():
    X, y = clips(30, "mfcc")
    options = SMALL | {"max_epochs": 3, "validation_fraction": 0.2, "patience": 2}
    first = MamievaClassifier(**options).fit(X, y).predict_proba(X)
    second_model = MamievaClassifier(**options).fit(X, y)
    np.testing.assert_array_equal(first, second_model.predict_proba(X))
    other_seed = MamievaClassifier(**options | {"random_state": 1}).fit(X, y).predict_proba(X)
    assert not np.allclose(first, other_seed)
    one_by_one = np.vstack([second_model.predict_proba([clip]) for clip in X])
    np.testing.assert_allclose(one_by_one, first, atol=1e-5)
    assert first.shape == (30, 3) and list(second_model.classes_) == list(LABELS)


def test_bad_clips_are_refused_with_what_is_wrong():
    X, y = clips(12, "mfcc")
    speech_only = MamievaClassifier(**SMALL | {"max_epochs": 1}).fit([(m, w, None) for m, w, _ in X], y)
    with pytest.raises(EmofuseError, match="fitted on speech only"):
        speech_only.predict(X[:1])
    with pytest.raises(NetworkInputError, match=r"MFCC map has shape \(20, 7\)"):
        speech_only.predict([(np.zeros((20, 7)), X[0][1], None)])
    with pytest.raises(NetworkInputError, match="expected \\(mfcc, waveform, faces\\)"):
        MamievaClassifier(**SMALL).fit([(m, w) for m, w, _ in X], y)
    with pytest.raises(NetworkInputError, match="faces have shape"):
        MamievaClassifier(**SMALL).fit(X[:-1] + [(X[-1][0], X[-1][1], np.zeros((4, 8, 8)))], y)
    with pytest.raises(NetworkInputError, match="mfcc_frames=0"):
        MamievaClassifier(**SMALL | {"mfcc_frames": 0}).fit(X, y)
    with pytest.raises(NetworkInputError, match="non-finite waveform"):
        MamievaClassifier(**SMALL).fit(X[:-1] + [(X[-1][0], np.full(100, np.nan), None)], y)
