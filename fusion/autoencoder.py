"""Clip features from an undercomplete autoencoder over frame-level features (Kirar et al. 2024).

An undercomplete autoencoder is trained, with the mean squared reconstruction error, on the
frames of the training clips (e.g. their MFCC vectors); each clip's frames are then encoded
and the bottleneck activations pooled over the clip into one fixed-length vector.
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted
from torch import nn

from extract.errors import EmofuseError

POOLINGS = ("mean", "std", "max")


class FrameAutoencoder(nn.Module):
    """Dense encoder ``d -> hidden... -> bottleneck`` and its mirror image as decoder (ReLU
    between layers, linear bottleneck and output).

    Parameters
    ----------
    n_features : int
        Values per frame.
    hidden_sizes : tuple of int
        Widths of the encoder's hidden layers (the decoder uses them reversed).
    bottleneck : int
        Width of the code.
    """

    def __init__(self, n_features, hidden_sizes=(64,), bottleneck=16):
        super().__init__()
        widths = [n_features, *hidden_sizes, bottleneck]

        def stack(sizes):
            layers = []
            for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
                layers.append(nn.Linear(a, b))
                if i < len(sizes) - 2:
                    layers.append(nn.ReLU())
            return nn.Sequential(*layers)

        self.encoder = stack(widths)
        self.decoder = stack(widths[::-1])

    def forward(self, x):
        """Reconstruction ``[shape=(batch, n_features)]`` of ``x [shape=(batch, n_features)]``."""
        return self.decoder(self.encoder(x))


class SequenceAutoencoder(TransformerMixin, BaseEstimator):
    """Pooled bottleneck activations of an undercomplete autoencoder trained on frames.

    ``fit`` takes the training clips' frame sequences: their frames (at most ``max_frames``,
    drawn at random) are standardised with the training mean and deviation (NaN -> 0, the
    mean) and an autoencoder is trained on them with Adam on the mean squared error
    L = (1/N) sum ||x_hat - x||^2.  ``transform`` encodes every frame of each clip and pools
    the bottleneck over the clip (``pooling``).  Kirar et al. state neither the input, the
    layer sizes, the code size nor the training; the defaults here (frame-wise MFCC, one hidden
    layer of 64, a code of 16, mean and standard deviation pooling, 15 epochs) are the field's
    usual small choices and all are parameters.  Deterministic for an integer ``random_state``.

    Parameters
    ----------
    hidden_sizes : tuple of int
        Encoder hidden layers (mirrored in the decoder).
    bottleneck : int
        Code size; must be smaller than the frame size (undercomplete).
    pooling : tuple of str
        Statistics of the code over a clip's frames, from ``POOLINGS``.
    learning_rate : float
        Adam step size.
    batch_size : int
        Frames per step.
    max_epochs : int
        Passes over the (sub-sampled) training frames.
    max_frames : int
        Training frames drawn at random from all training clips (bounds the cost).
    random_state : int, RandomState or None
    n_threads : int
        Torch threads while fitting and encoding.

    Attributes
    ----------
    mean_, scale_ : np.ndarray [shape=(d,)]
        Frame standardisation.
    network_ : FrameAutoencoder
    loss_history_ : list of float
        Training MSE (standardised units) after each epoch.

    References
    ----------
    Kirar, Gill, Jangra & Sharma (2024), IJISAE: undercomplete autoencoder audio features.
    Goodfellow, Bengio & Courville (2016), Deep Learning, section 14.1 (undercomplete
    autoencoders).
    """

    def __init__(self, hidden_sizes=(64,), bottleneck=16, pooling=("mean", "std"), learning_rate=1e-3,
                 batch_size=256, max_epochs=15, max_frames=30000, random_state=0, n_threads=1):
        self.hidden_sizes = hidden_sizes
        self.bottleneck = bottleneck
        self.pooling = pooling
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.max_frames = max_frames
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, sequences, y=None):
        """Train on the frames of ``sequences`` (list of np.ndarray [shape=(t_i, d)])."""
        sequences = _check_sequences(sequences)
        d = sequences[0].shape[1]
        if not 0 < self.bottleneck < d or set(self.pooling) - set(POOLINGS) or not self.pooling:
            raise EmofuseError(f"SequenceAutoencoder: need 0 < bottleneck ({self.bottleneck}) < frame size ({d}) "
                               f"and pooling from {POOLINGS}, got {self.pooling}")
        rng = check_random_state(self.random_state)
        frames = np.vstack(sequences)
        if len(frames) > self.max_frames:
            frames = frames[np.sort(rng.choice(len(frames), self.max_frames, replace=False))]
        self.n_features_in_ = d
        observed = np.isfinite(frames)
        count = np.maximum(observed.sum(axis=0), 1)
        self.mean_ = np.where(observed, frames, 0).sum(axis=0) / count
        scale = np.sqrt((np.where(observed, frames - self.mean_, 0) ** 2).sum(axis=0) / count)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        x = torch.from_numpy(self._standardise(frames))
        previous = torch.get_num_threads()
        torch.set_num_threads(self.n_threads)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(rng.randint(2**31 - 1)))
                self.network_ = FrameAutoencoder(d, tuple(self.hidden_sizes), self.bottleneck)
                optimizer = torch.optim.Adam(self.network_.parameters(), lr=self.learning_rate)
                self.loss_history_ = []
                for _ in range(self.max_epochs):
                    order = torch.randperm(len(x))
                    total = 0.0
                    for start in range(0, len(x), self.batch_size):
                        batch = x[order[start : start + self.batch_size]]
                        optimizer.zero_grad()
                        loss = torch.mean((self.network_(batch) - batch) ** 2)
                        loss.backward()
                        optimizer.step()
                        total += loss.item() * len(batch)
                    self.loss_history_.append(total / len(x))
        finally:
            torch.set_num_threads(previous)
        self.network_.eval()
        return self

    def encode(self, frames) -> np.ndarray:
        """Bottleneck activations [shape=(t, bottleneck)] of frames [shape=(t, d)]."""
        check_is_fitted(self, "network_")
        with torch.no_grad():
            return self.network_.encoder(torch.from_numpy(self._standardise(frames))).numpy()

    def reconstruction_error(self, sequences) -> float:
        """Mean squared reconstruction error, in standardised units, over all frames."""
        check_is_fitted(self, "network_")
        x = torch.from_numpy(self._standardise(np.vstack(_check_sequences(sequences))))
        with torch.no_grad():
            return float(torch.mean((self.network_(x) - x) ** 2))

    def transform(self, sequences) -> np.ndarray:
        """Pooled codes [shape=(n_clips, bottleneck * len(pooling))], statistic after statistic."""
        sequences = _check_sequences(sequences)
        if sequences[0].shape[1] != self.n_features_in_:
            raise EmofuseError(f"SequenceAutoencoder: frames have {sequences[0].shape[1]} values, "
                               f"fitted on {self.n_features_in_}")
        statistics = {"mean": np.mean, "std": np.std, "max": np.max}
        codes = [self.encode(s) for s in sequences]
        return np.array([np.concatenate([statistics[p](c, axis=0) for p in self.pooling]) for c in codes])

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``ae_<k>_<statistic>``."""
        return np.array([f"ae_{k}_{p}" for p in self.pooling for k in range(self.bottleneck)], dtype=object)

    def _standardise(self, frames):
        return np.nan_to_num((np.asarray(frames, np.float64) - self.mean_) / self.scale_, nan=0.0).astype(np.float32)


def _check_sequences(sequences) -> list:
    sequences = [np.asarray(s, dtype=np.float64) for s in sequences]
    if not sequences or any(s.ndim != 2 or len(s) == 0 or s.shape[1] != sequences[0].shape[1] for s in sequences):
        raise EmofuseError("SequenceAutoencoder needs a non-empty list of (t >= 1, d) frame sequences of one width d")
    return sequences
