"""Sequence networks over a flat feature vector (Kirar et al. 2024's classifier after selection).

Kirar et al. feed the features kept by their zebra selection to a BiLSTM with self-attention,
but do not say how a flat vector becomes a time sequence.  Here (the usual reading when a
tabular vector is given to a recurrent network) the standardised vector, in its column order
(audio block, then video block, each in the selector's order), is cut into consecutive chunks
of ``step_size`` values, each chunk one time step; the last chunk is zero-padded (zero is the
training mean).  ``step_size=1`` reads one feature per step.

- `FeatureSequenceClassifier`: that sequence into the BiLSTM with multi-head self-attention
  of ``classify.networks`` (``attention=True``) or into a plain BiLSTM (``attention=False``),
  the two networks Kirar et al. compare.
"""

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn

from .networks import BiLstmAttentionClassifier, NetworkInputError, _reverse_within_lengths, _standardiser


def feature_sequences(X, step_size: int) -> np.ndarray:
    """Cut each row of ``X`` into steps of ``step_size`` consecutive values.

    Parameters
    ----------
    X : np.ndarray [shape=(n, d)]
    step_size : int >= 1

    Returns
    -------
    np.ndarray [shape=(n, ceil(d / step_size), step_size)]
        Row i, step s holds ``X[i, s * step_size : (s + 1) * step_size]``, zero-padded at the end.
    """
    X = np.asarray(X, dtype=np.float32)
    if X.ndim != 2 or step_size < 1:
        raise NetworkInputError(f"need X of shape (n, d) and step_size >= 1, got {X.shape} and {step_size}")
    n_steps = -(-X.shape[1] // step_size)
    padded = np.zeros((len(X), n_steps * step_size), np.float32)
    padded[:, : X.shape[1]] = X
    return padded.reshape(len(X), n_steps, step_size)


class BiLstm(nn.Module):
    """BiLSTM -> masked mean over time -> dropout -> dense: the BiLSTM without attention.

    Same inputs and outputs as ``classify.networks.BiLstmAttention`` (``x`` zero-padded after
    each sequence's ``lengths`` frames).
    """

    def __init__(self, n_features, n_classes, hidden_size=32, dropout=0.2):
        super().__init__()
        self.forward_lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * hidden_size, n_classes))

    def forward(self, x, lengths):
        """Logits ``[shape=(batch, n_classes)]``."""
        mask = torch.arange(x.shape[1])[None, :] < lengths[:, None]
        backward = _reverse_within_lengths(self.backward_lstm(_reverse_within_lengths(x, lengths))[0], lengths)
        h = torch.cat([self.forward_lstm(x)[0], backward], dim=2)
        weights = mask.unsqueeze(-1).to(h.dtype)
        return self.classifier((h * weights).sum(dim=1) / lengths[:, None].to(h.dtype))


class _SequenceNetwork(BiLstmAttentionClassifier):
    """``BiLstmAttentionClassifier`` whose network may be the plain ``BiLstm``."""

    def __init__(self, attention=True, hidden_size=32, n_heads=4, dropout=0.2, frame_stride=1, learning_rate=3e-3,
                 weight_decay=0.0, batch_size=32, max_epochs=40, validation_fraction=0.15, patience=6,
                 random_state=0, n_threads=1):
        super().__init__(hidden_size=hidden_size, n_heads=n_heads, dropout=dropout, frame_stride=frame_stride,
                         learning_rate=learning_rate, weight_decay=weight_decay, batch_size=batch_size,
                         max_epochs=max_epochs, validation_fraction=validation_fraction, patience=patience,
                         random_state=random_state, n_threads=n_threads)
        self.attention = attention

    def _build_network(self, n_classes):
        if self.attention:
            return super()._build_network(n_classes)
        return BiLstm(self.n_features_in_, n_classes, self.hidden_size, self.dropout)


class FeatureSequenceClassifier(ClassifierMixin, BaseEstimator):
    """A BiLSTM (with or without multi-head self-attention) over a feature vector read as a sequence.

    The columns of X are standardised with the training mean and deviation (NaN -> 0), the
    rows cut into steps of ``step_size`` values (`feature_sequences`), and the sequences
    classified by ``classify.networks.BiLstmAttentionClassifier`` (``attention=True``) or by
    the same training loop around a plain BiLSTM (`BiLstm`, ``attention=False``).

    Parameters
    ----------
    attention : bool
        Multi-head self-attention after the BiLSTM (Kirar et al.'s model) or not (their baseline).
    step_size : int
        Features per time step.
    hidden_size, n_heads, dropout, learning_rate, weight_decay, batch_size, max_epochs,
    validation_fraction, patience, random_state, n_threads
        As ``classify.networks.BiLstmAttentionClassifier`` (``frame_stride`` is 1).

    Attributes
    ----------
    classes_ : np.ndarray
    mean_, scale_ : np.ndarray [shape=(d,)]
    model_ : BiLstmAttentionClassifier
        The fitted sequence classifier (its ``network_`` is the torch module).

    References
    ----------
    Kirar, Gill, Jangra & Sharma (2024), IJISAE: BiLSTM with self-attention against a BiLSTM
    and a CNN on the selected features.
    """

    def __init__(self, attention=True, step_size=4, hidden_size=32, n_heads=4, dropout=0.2, learning_rate=3e-3,
                 weight_decay=0.0, batch_size=32, max_epochs=40, validation_fraction=0.15, patience=6,
                 random_state=0, n_threads=1):
        self.attention = attention
        self.step_size = step_size
        self.hidden_size = hidden_size
        self.n_heads = n_heads
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    def fit(self, X, y):
        """Standardise, cut into sequences and train on ``X [shape=(n, d)]`` and labels ``y``."""
        X = self._check(X)
        self.mean_, self.scale_ = _standardiser(X)  # _check refused inf: NaN is the only gap
        self.n_features_in_ = X.shape[1]
        params = {k: v for k, v in self.get_params().items() if k != "step_size"}
        self.model_ = _SequenceNetwork(frame_stride=1, **params).fit(self._sequences(X), y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X):
        """Class probabilities [shape=(n, n_classes)], columns as ``classes_``."""
        check_is_fitted(self, "model_")
        return self.model_.predict_proba(self._sequences(self._check(X)))

    def predict(self, X):
        """Most probable class of each row."""
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def network_(self):
        """The fitted torch module."""
        return self.model_.network_

    def _check(self, X):
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0 or X.shape[1] == 0 or np.isinf(X).any():
            raise NetworkInputError(f"{type(self).__name__}: X must be a finite (n, d) matrix, got shape {X.shape}")
        if hasattr(self, "n_features_in_") and X.shape[1] != self.n_features_in_ and hasattr(self, "model_"):
            raise NetworkInputError(f"{type(self).__name__}: X has {X.shape[1]} columns, fitted on {self.n_features_in_}")
        return X

    def _sequences(self, X):
        standardised = np.nan_to_num((X - self.mean_) / self.scale_, nan=0.0)
        return list(feature_sequences(standardised, self.step_size))
