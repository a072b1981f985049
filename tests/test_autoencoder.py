"""The undercomplete sequence autoencoder (Kirar et al.'s audio features) on frames with known structure."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from extract.errors import EmofuseError
from fusion.autoencoder import SequenceAutoencoder

FAST = dict(hidden_sizes=(16,), bottleneck=2, max_epochs=60, learning_rate=3e-3)


def low_rank_sequences(n_clips=40, seed=0):
    """Frames on a 2-D plane in 10-D, clip means +-1 by class (odd clips class 1)."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((2, 10))
    sequences = [rng.standard_normal((50, 2)) @ basis + (1.0 if i % 2 else -1.0) for i in range(n_clips)]
    return sequences, np.arange(n_clips) % 2


@pytest.mark.slow
def test_a_two_unit_code_reconstructs_a_plane_but_not_noise():
    sequences, _ = low_rank_sequences()
    plane = SequenceAutoencoder(**FAST).fit(sequences)
    assert plane.loss_history_[-1] < 0.05 * plane.loss_history_[0]
    assert plane.reconstruction_error(sequences) < 0.05
    rng = np.random.default_rng(1)
    noise = [rng.standard_normal((50, 10)) for _ in range(40)]
    # Isotropic noise keeps 2 of its 10 unit variances at best: error >= 0.8 in standardised units.
    assert SequenceAutoencoder(**FAST).fit(noise).reconstruction_error(noise) > 0.7


def test_pooled_codes_have_their_shape_names_and_separate_the_classes():
    sequences, y = low_rank_sequences()
    encoder = SequenceAutoencoder(**FAST, pooling=("mean", "std", "max")).fit(sequences[:30])
    Z = encoder.transform(sequences)
    assert Z.shape == (40, 6)
    assert list(encoder.get_feature_names_out()) == ["ae_0_mean", "ae_1_mean", "ae_0_std", "ae_1_std",
                                                     "ae_0_max", "ae_1_max"]
    codes = encoder.encode(sequences[0])
    np.testing.assert_allclose(Z[0, :2], codes.mean(axis=0), rtol=1e-5)
    model = LogisticRegression().fit(Z[:30], y[:30])
    assert model.score(Z[30:], y[30:]) == 1.0


def test_fit_is_deterministic_for_a_seed_and_bounded_by_max_frames():
    sequences, _ = low_rank_sequences()
    a = SequenceAutoencoder(**FAST | {"max_epochs": 3}, max_frames=500, random_state=4).fit(sequences)
    b = SequenceAutoencoder(**FAST | {"max_epochs": 3}, max_frames=500, random_state=4).fit(sequences)
    np.testing.assert_array_equal(a.transform(sequences), b.transform(sequences))
    assert len(a.loss_history_) == 3


def test_bad_settings_and_inputs_are_refused():
    sequences, _ = low_rank_sequences(4)
    with pytest.raises(EmofuseError, match="bottleneck"):
        SequenceAutoencoder(bottleneck=10).fit(sequences)
    with pytest.raises(EmofuseError, match="sequences"):
        SequenceAutoencoder().fit([])
    encoder = SequenceAutoencoder(**FAST | {"max_epochs": 1}).fit(sequences)
    with pytest.raises(EmofuseError, match="fitted on 10"):
        encoder.transform([np.zeros((5, 3))])
