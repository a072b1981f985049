"""MM-EMOR's head: learns from whichever branch carries the label; the dense penalty works."""

import pickle

import numpy as np
import pytest

from classify.mm_emor import MmEmorClassifier
from classify.networks import NetworkInputError

from test_mobilenet import stripes

SMALL = dict(blocks=((1, 8, 1, 1), (4, 16, 1, 2)), stem_channels=8, encoding_size=16, dense_units=32,
             max_epochs=12, learning_rate=1e-2)


def texts_for(y, informative, seed):
    rng = np.random.default_rng(seed)
    T = rng.normal(0, 1, (len(y), 24))
    if informative:
        T[:, :3] += np.where(y == "low", 1.5, -1.5)[:, None]
    return T


@pytest.mark.parametrize("image_informative", [True, False])
def test_learns_from_the_informative_branch(image_informative):
    X, y = stripes(80, 0)
    Xt, yt = stripes(40, 1)
    if not image_informative:
        X, Xt = np.random.default_rng(5).normal(0, 0.3, X.shape), np.random.default_rng(6).normal(0, 0.3, Xt.shape)
    model = MmEmorClassifier(**SMALL).fit((X, texts_for(y, not image_informative, 2)), y)
    assert (model.predict((Xt, texts_for(yt, not image_informative, 3))) == yt).mean() >= 0.85
    assert model.n_epochs_ == 12 and np.isfinite(model.best_validation_loss_)


def test_text_only_model_and_reproducibility():
    y = np.array(["low", "high"] * 30)
    model = MmEmorClassifier(**SMALL).fit((None, texts_for(y, True, 0)), y)
    yt = np.array(["low", "high"] * 20)
    assert (model.predict((None, texts_for(yt, True, 1))) == yt).mean() >= 0.9
    again = MmEmorClassifier(**SMALL).fit((None, texts_for(y, True, 0)), y)
    np.testing.assert_array_equal(again.predict_proba((None, texts_for(yt, True, 1))),
                                  model.predict_proba((None, texts_for(yt, True, 1))))
    pickle.loads(pickle.dumps(model))  # the training-time penalty hook is gone


def test_branches_choose_the_parts_of_x_used():
    X, y = stripes(60, 0)
    T = texts_for(y, True, 0)
    text_only = MmEmorClassifier(**SMALL, branches=("text",)).fit((X, T), y)
    assert text_only.image_shape_ is None and text_only.text_size_ == 24
    assert text_only.network_.image_encoder is None
    image_only = MmEmorClassifier(**SMALL, branches=("image",)).fit((X, T), y)
    assert image_only.image_shape_ == X.shape[1:] and image_only.text_size_ == 0
    # the ignored part may be anything, even absent
    np.testing.assert_array_equal(text_only.predict_proba((None, T)), text_only.predict_proba((X, T)))
    with pytest.raises(NetworkInputError, match="branches"):
        MmEmorClassifier(branches=("audio",)).fit((X, T), y)
    with pytest.raises(NetworkInputError, match="neither images nor text"):
        MmEmorClassifier(branches=("image",)).fit((None, T), y)


def test_dense_penalty_shrinks_only_the_dense_weights():
    y = np.array(["low", "high"] * 30)
    T = texts_for(y, True, 0)
    free = MmEmorClassifier(**SMALL, penalty=0.0).fit((None, T), y)
    held = MmEmorClassifier(**SMALL, penalty=1.0).fit((None, T), y)
    norm = lambda m: m.network_.dense.weight.detach().norm().item()  # noqa: E731
    assert norm(held) < 0.5 * norm(free)


def test_bad_pairs_are_refused():
    with pytest.raises(NetworkInputError, match="neither images nor text"):
        MmEmorClassifier().fit((None, None), ["a", "b"])
    with pytest.raises(NetworkInputError, match="4 images but 3 text vectors"):
        MmEmorClassifier().fit((np.zeros((4, 2, 8, 8)), np.zeros((3, 5))), ["a", "b"] * 2)
    with pytest.raises(NetworkInputError, match="must be a pair"):
        MmEmorClassifier().fit(np.zeros((4, 5)), ["a", "b"] * 2)
