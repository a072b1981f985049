"""Small torch networks from the emotion-recognition papers, wrapped as scikit-learn classifiers.

Three networks, all trained on CPU with a fixed seed so that a fit is reproducible:

- `FerCnnClassifier`: the 1-D CNN ("FERCNN") of DV-EmotionNet over a fused feature vector.
- `BiLstmAttentionClassifier`: a BiLSTM with multi-head self-attention over frame sequences
  (Kirar et al.).
- `AttentionFusionClassifier`: attention weights over an audio and a video encoding
  (Mamieva et al., eqs. 4-6).

Each estimator standardises its inputs with the training mean and standard deviation and
imputes NaN with the training mean (0 after standardisation).  Training uses Adam on the
cross-entropy loss; when ``validation_fraction > 0`` a stratified part of the training data is
held out and training stops once its loss has not improved for ``patience`` epochs, keeping the
weights of the best epoch.  Seeding happens inside a forked torch RNG and the thread count is
restored afterwards, so fitting leaves torch's global state as it found it.
"""

import math

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from tqdm import tqdm

from extract.errors import EmofuseError
from features.torch_threads import torch_threads

__all__ = [
    "NetworkInputError",
    "FerCnnClassifier",
    "BiLstmAttentionClassifier",
    "AttentionFusionClassifier",
]

_PREDICT_BATCH = 512


class NetworkInputError(EmofuseError, ValueError):
    """Input a network classifier cannot use (a ``ValueError`` too, as scikit-learn expects)."""


# ---------------------------------------------------------------------------------------------
# Input validation and standardisation
# ---------------------------------------------------------------------------------------------


def _as_sequences(X, estimator):
    """Validate a list of frame sequences, each ``np.ndarray [shape=(t_i, d)]`` with t_i >= 1."""
    if isinstance(X, np.ndarray) and X.ndim != 3:
        raise NetworkInputError(
            f"{estimator}: X must be a list of (t, d) sequences or a 3-D array, "
            f"got shape {X.shape}"
        )
    sequences = [np.asarray(x, dtype=np.float64) for x in X]
    if not sequences:
        raise NetworkInputError(f"{estimator}: X is empty (no sequences)")
    n_features = sequences[0].shape[-1] if sequences[0].ndim == 2 else None
    for i, x in enumerate(sequences):
        if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0 or x.shape[1] != n_features:
            raise NetworkInputError(
                f"{estimator}: sequence {i} has shape {x.shape}; every sequence must be "
                f"(t >= 1, {n_features})"
            )
        if np.isinf(x).any():
            raise NetworkInputError(f"{estimator}: sequence {i} contains infinite values")
    return sequences


def _standardiser(X):
    """Per-column mean and scale of ``X [shape=(n, d)]`` ignoring NaN; scale 1 where constant."""
    observed = ~np.isnan(X)
    count = observed.sum(axis=0)
    mean = np.where(observed, X, 0.0).sum(axis=0) / np.maximum(count, 1)
    deviation = np.where(observed, X - mean, 0.0)
    scale = np.sqrt((deviation**2).sum(axis=0) / np.maximum(count, 1))
    return mean, np.where(scale > 0, scale, 1.0)


def _standardise(X, mean, scale):
    """``(X - mean) / scale`` as float32, NaN replaced by 0 (the training mean)."""
    return np.nan_to_num((X - mean) / scale, nan=0.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Shared estimator: labels, training loop with early stopping, prediction
# ---------------------------------------------------------------------------------------------


class _TorchClassifier(ClassifierMixin, BaseEstimator):
    """Training loop and scikit-learn plumbing shared by the network classifiers.

    Subclasses implement ``_prepare(X, fitting)`` (validate and standardise X into an
    indexable collection of samples), ``_batch(inputs, index)`` (the tensors the network takes
    for the samples at ``index``) and ``_build_network(n_classes)``.
    """

    def fit(self, X, y):
        """Train the network on ``X`` and labels ``y`` (any hashable labels, e.g. strings)."""
        name = type(self).__name__
        if y is None:
            raise NetworkInputError(f"{name} requires y to be passed, but the target y is None")
        inputs = self._prepare(X, fitting=True)
        try:
            y = column_or_1d(y, warn=True)
            check_classification_targets(y)
        except ValueError as error:
            raise NetworkInputError(f"{name}: {error}") from error
        if len(y) != len(inputs):
            raise NetworkInputError(f"{name}: y has {len(y)} labels for {len(inputs)} samples")
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise NetworkInputError(
                f"{name}: y has 1 class ({self.classes_[0]!r}); a classifier needs at least 2"
            )
        rng = check_random_state(self.random_state)
        train_index, val_index = self._validation_split(codes, rng)
        targets = torch.as_tensor(codes, dtype=torch.long)
        with torch_threads(self.n_threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(rng.randint(2**31 - 1)))
            self.network_ = self._build_network(len(self.classes_))
            self.n_epochs_, self.best_validation_loss_ = self._train(
                inputs, targets, train_index, val_index
            )
        self.network_.eval()
        return self

    def _validation_split(self, codes, rng):
        """Stratified hold-out of ``validation_fraction`` of the samples (none if too few)."""
        index = np.arange(len(codes))
        n_val = int(round(self.validation_fraction * len(codes)))
        n_classes = codes.max() + 1
        if n_val < n_classes or len(codes) - n_val < n_classes:
            return index, index[:0]
        stratify = codes if np.bincount(codes).min() >= 2 else None
        train_index, val_index = train_test_split(
            index, test_size=n_val, stratify=stratify, random_state=rng
        )
        return train_index, val_index

    def _train(self, inputs, targets, train_index, val_index):
        """Adam on cross-entropy; early stopping on the validation loss when there is one."""
        optimizer = torch.optim.Adam(
            self.network_.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay
        )
        loss_function = nn.CrossEntropyLoss()
        best_loss, best_state, epochs_since_best = math.inf, None, 0
        # A progress bar over epochs on an interactive terminal (tqdm hides it elsewhere).
        epochs = tqdm(range(1, self.max_epochs + 1), desc=type(self).__name__, unit="epoch", leave=False,
                      disable=None)
        for epoch in epochs:
            self.network_.train()
            order = train_index[torch.randperm(len(train_index)).numpy()]
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimizer.zero_grad()
                loss = loss_function(self.network_(*self._batch(inputs, batch)), targets[batch])
                loss.backward()
                optimizer.step()
            if len(val_index) == 0:
                continue
            val_loss = loss_function(self._logits(inputs, val_index), targets[val_index]).item()
            if val_loss < best_loss:
                best_loss, epochs_since_best = val_loss, 0
                best_state = {k: v.clone() for k, v in self.network_.state_dict().items()}
            else:
                epochs_since_best += 1
                if epochs_since_best >= self.patience:
                    break
        epochs.close()
        if best_state is not None:
            self.network_.load_state_dict(best_state)
        return epoch, best_loss

    def _logits(self, inputs, index):
        """Network outputs ``[shape=(len(index), n_classes)]`` in evaluation mode, no gradients."""
        self.network_.eval()
        with torch.no_grad():
            return torch.cat(
                [
                    self.network_(*self._batch(inputs, index[start : start + _PREDICT_BATCH]))
                    for start in range(0, len(index), _PREDICT_BATCH)
                ]
            )

    def predict_proba(self, X):
        """Class probabilities ``np.ndarray [shape=(n, n_classes)]``, columns as ``classes_``."""
        check_is_fitted(self, "network_")
        inputs = self._prepare(X, fitting=False)
        with torch_threads(self.n_threads):
            logits = self._logits(inputs, np.arange(len(inputs)))
        return torch.softmax(logits, dim=1).numpy().astype(np.float64)

    def predict(self, X):
        """Most probable class label for each sample, ``np.ndarray [shape=(n,)]``."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class _TabularClassifier(_TorchClassifier):
    """A network over one standardised feature vector per sample, ``X [shape=(n, d)]``."""

    def _prepare(self, X, fitting):
        # scikit-learn's checks (2-D, non-empty, real, no inf; feature count on predict), with
        # their ValueErrors re-raised as NetworkInputError.
        try:
            X = validate_data(self, X, reset=fitting, dtype=np.float64,
                              ensure_all_finite="allow-nan")
        except ValueError as error:
            raise NetworkInputError(f"{type(self).__name__}: {error}") from error
        if fitting:
            self._check_feature_layout(X.shape[1])
            self.mean_, self.scale_ = _standardiser(X)
        return torch.from_numpy(_standardise(X, self.mean_, self.scale_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def _check_feature_layout(self, n_features):
        """Hook for subclasses that constrain the number of features (no constraint here)."""

    def _batch(self, inputs, index):
        return (inputs[index],)


# ---------------------------------------------------------------------------------------------
# FERCNN (DV-EmotionNet)
# ---------------------------------------------------------------------------------------------


class FerCnn(nn.Module):
    """The FERCNN stack over a feature vector read as a one-channel 1-D signal.

    Five Conv1D layers (kernel 3, "same" padding, ReLU) each followed by max-pooling of 3;
    a pool that would shrink the length below 1 (length < 3) is skipped, so any input length
    >= 1 works.  Dropout follows the second and third pool and the dense layer.

    Parameters
    ----------
    n_features : int
        Length of the input vector.
    n_classes : int
        Number of output logits.
    channels : tuple of int
        Output channels of the five convolutions (paper: 256, 128, 64, 64, 32).
    dense_units : int
        Width of the dense ReLU layer (paper: 256).
    dropout : float
        Dropout probability (paper: 0.2).
    """

    def __init__(self, n_features, n_classes, channels=(256, 128, 64, 64, 32), dense_units=256,
                 dropout=0.2):
        super().__init__()
        layers, length, in_channels = [], n_features, 1
        for i, out_channels in enumerate(channels):
            layers += [nn.Conv1d(in_channels, out_channels, kernel_size=3, padding=1), nn.ReLU()]
            if length >= 3:
                layers.append(nn.MaxPool1d(3))
                length //= 3
            if i in (1, 2):
                layers.append(nn.Dropout(dropout))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * length, dense_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(dense_units, n_classes),
        )

    def forward(self, x):
        """Logits ``[shape=(batch, n_classes)]`` for ``x [shape=(batch, n_features)]``."""
        return self.classifier(self.features(x.unsqueeze(1)))


class FerCnnClassifier(_TabularClassifier):
    """The 1-D CNN ("FERCNN") of DV-EmotionNet on a fused feature vector.

    The standardised feature vector is read as a one-channel signal of length ``d``:
    Conv1D 256 -> max-pool 3 -> Conv1D 128 -> pool -> dropout -> Conv1D 64 -> pool ->
    dropout -> Conv1D 64 -> pool -> Conv1D 32 -> pool -> flatten -> dense 256 ReLU ->
    dropout -> softmax.  Kernels are 3 wide with "same" padding and ReLU.  The paper's stack
    needs a vector of at least 3^5 = 243 values to pool five times; here a pool that would
    shrink the length below 1 is skipped, so any ``d >= 1`` works.  With the paper's widths the
    network has 153,128 parameters for 8 classes at ``d = 100`` or ``d = 400`` (both pool
    down to length 1), about the 150 k the paper reports.

    Parameters
    ----------
    channels : tuple of int
        Output channels of the five convolutions.
    dense_units : int
        Width of the dense layer.
    dropout : float
        Dropout probability.
    learning_rate, weight_decay : float
        Adam step size and L2 penalty.
    batch_size : int
        Samples per gradient step.
    max_epochs : int
        Upper bound on training epochs.
    validation_fraction : float
        Part of the training data held out for early stopping (0 disables it).
    patience : int
        Epochs without validation improvement before stopping.
    random_state : int, RandomState or None
        Seed for the validation split, initial weights, batch order and dropout.
    n_threads : int
        Torch threads used while fitting and predicting.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    n_features_in_ : int
    mean_, scale_ : np.ndarray [shape=(n_features,)]
        Training mean and standard deviation used to standardise X.
    network_ : FerCnn
    n_epochs_ : int
        Epochs actually trained.
    best_validation_loss_ : float
        Lowest validation cross-entropy (inf without a validation split).

    References
    ----------
    Dommeti, Nallapati & Alfaris (2024), "DV-EmotionNet", DOI 10.23880/oajcij-16000112: the
    FERCNN classifier.
    """

    def __init__(self, channels=(256, 128, 64, 64, 32), dense_units=256, dropout=0.2,
                 learning_rate=1e-3, weight_decay=0.0, batch_size=32, max_epochs=30,
                 validation_fraction=0.15, patience=5, random_state=0, n_threads=1):
        self.channels = channels
        self.dense_units = dense_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    def _build_network(self, n_classes):
        return FerCnn(self.n_features_in_, n_classes, tuple(self.channels), self.dense_units,
                      self.dropout)


# ---------------------------------------------------------------------------------------------
# BiLSTM with multi-head self-attention (Kirar et al.)
# ---------------------------------------------------------------------------------------------


def scaled_dot_product_attention(q, k, v, key_mask):
    """Attention over keys, ignoring padded ones.

    Parameters
    ----------
    q, k, v : torch.Tensor [shape=(..., t, d_k)]
        Queries, keys and values.
    key_mask : torch.Tensor [shape=(..., t), dtype=bool]
        True where a key is a real frame, False where it is padding.

    Returns
    -------
    torch.Tensor [shape=(..., t, d_k)]
        ``softmax(Q K^T / sqrt(d_k)) V`` with padded keys given zero weight.
    """
    scores = (q / math.sqrt(q.shape[-1])) @ k.transpose(-2, -1)
    scores = scores.masked_fill(~key_mask.unsqueeze(-2), -math.inf)
    return torch.softmax(scores, dim=-1) @ v


def _reverse_within_lengths(x, lengths):
    """Reverse the first ``lengths[i]`` steps of each ``x[i]``, leaving the padding in place.

    ``x [shape=(batch, t, d)]``, ``lengths [shape=(batch,)]``; applying it twice is the identity.
    """
    steps = torch.arange(x.shape[1])
    index = torch.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)
    return x.gather(1, index.unsqueeze(2).expand_as(x))


class BiLstmAttention(nn.Module):
    """BiLSTM -> multi-head self-attention -> residual + layer norm -> masked mean -> dense.

    Parameters
    ----------
    n_features : int
        Features per frame.
    n_classes : int
        Number of output logits.
    hidden_size : int
        LSTM units per direction; the attention works on ``2 * hidden_size`` dimensions.
    n_heads : int
        Attention heads; must divide ``2 * hidden_size``.
    dropout : float
        Dropout before the dense output layer.
    """

    def __init__(self, n_features, n_classes, hidden_size=32, n_heads=4, dropout=0.2):
        super().__init__()
        d_model = 2 * hidden_size
        self.n_heads = n_heads
        self.forward_lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.query = nn.Linear(d_model, d_model, bias=False)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.value = nn.Linear(d_model, d_model, bias=False)
        self.output = nn.Linear(d_model, d_model)
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(d_model, n_classes))

    def forward(self, x, lengths):
        """Logits ``[shape=(batch, n_classes)]``.

        ``x [shape=(batch, t_max, n_features)]`` is zero-padded after each sequence's
        ``lengths [shape=(batch,)]`` frames; padding does not change any sequence's output.
        """
        batch, t_max, _ = x.shape
        mask = torch.arange(t_max)[None, :] < lengths[:, None]
        # 1. BiLSTM: the forward LSTM reads the padded batch (padding comes after the real
        #    frames, so it cannot reach them); the backward one reads each sequence reversed
        #    within its own length, so it too starts at a real frame.
        backward = _reverse_within_lengths(
            self.backward_lstm(_reverse_within_lengths(x, lengths))[0], lengths
        )
        h = torch.cat([self.forward_lstm(x)[0], backward], dim=2)

        # 2. Q = H W_Q, K = H W_K, V = H W_V, split into heads of d_k = d_model / n_heads.
        def heads(projection):
            return projection(h).view(batch, t_max, self.n_heads, -1).transpose(1, 2)

        q, k, v = heads(self.query), heads(self.key), heads(self.value)
        # 3. head_i = softmax(Q_i K_i^T / sqrt(d_k)) V_i, padded keys masked out.
        attended = scaled_dot_product_attention(q, k, v, mask[:, None, :])
        # 4. Concatenate the heads and project with W_O.
        attended = self.output(attended.transpose(1, 2).reshape(batch, t_max, -1))
        # 5. Residual connection and layer norm.
        z = self.norm(h + attended)
        # 6. Mean over the real frames, then the dense output layer.
        weights = mask.unsqueeze(-1).to(z.dtype)
        pooled = (z * weights).sum(dim=1) / lengths[:, None].to(z.dtype)
        return self.classifier(pooled)


def _average_frames(x, stride):
    """Average each run of ``stride`` frames into one step (the last run may be shorter).

    ``x [shape=(t, d)]`` -> ``np.ndarray [shape=(ceil(t / stride), d)]``.
    """
    if stride == 1:
        return x
    n_full = len(x) // stride
    pooled = x[: n_full * stride].reshape(n_full, stride, -1).mean(axis=1)
    if len(x) % stride:
        pooled = np.vstack([pooled, x[n_full * stride :].mean(axis=0, keepdims=True)])
    return pooled


class BiLstmAttentionClassifier(_TorchClassifier):
    """A BiLSTM with multi-head self-attention over frame-level feature sequences (BiLSTM-SA).

    Each sample is a sequence ``[shape=(t_i, d)]`` of frames (e.g. MFCC, energy and pitch
    streams from the feature store side by side); lengths may differ.  Frames are
    standardised with the per-feature training mean and deviation (NaN -> training mean),
    each run of ``frame_stride`` frames is averaged into one step (the default 4 turns a
    3.5 s clip at 100 frames/s into 88 steps), and batches are zero-padded with a mask:
    the backward LSTM reads each sequence reversed within its own length, attention ignores
    padded keys and pooling averages real steps only, so a sequence's probabilities do not
    depend on what it is batched with.

    Network: BiLSTM -> Q = H W_Q, K = H W_K, V = H W_V -> per head
    ``softmax(Q K^T / sqrt(d_k)) V`` -> concatenated heads projected by W_O -> residual + layer
    norm -> masked mean over time -> dropout -> dense softmax.  The attention is written out
    (`scaled_dot_product_attention`) rather than taken from ``nn.MultiheadAttention``.

    Parameters
    ----------
    hidden_size : int
        LSTM units per direction.
    n_heads : int
        Attention heads; must divide ``2 * hidden_size``.
    dropout : float
        Dropout before the output layer.
    frame_stride : int
        Frames averaged into one step (1 keeps every frame).
    learning_rate, weight_decay : float
        Adam step size and L2 penalty.
    batch_size : int
        Sequences per gradient step.
    max_epochs : int
        Upper bound on training epochs.
    validation_fraction : float
        Part of the training data held out for early stopping (0 disables it).
    patience : int
        Epochs without validation improvement before stopping.
    random_state : int, RandomState or None
        Seed for the validation split, initial weights, batch order and dropout.
    n_threads : int
        Torch threads used while fitting and predicting.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    n_features_in_ : int
        Features per frame.
    mean_, scale_ : np.ndarray [shape=(n_features,)]
        Per-feature training mean and standard deviation over all training frames.
    network_ : BiLstmAttention
    n_epochs_ : int
    best_validation_loss_ : float

    References
    ----------
    Kirar, Gill, Jangra & Sharma (2024), IJISAE: BiLSTM with multi-head self-attention after
    zebra feature selection.
    Vaswani et al. (2017), "Attention is all you need", NeurIPS: scaled dot-product and
    multi-head attention.
    """

    def __init__(self, hidden_size=32, n_heads=4, dropout=0.2, frame_stride=4,
                 learning_rate=3e-3, weight_decay=0.0, batch_size=32, max_epochs=40,
                 validation_fraction=0.15, patience=6, random_state=0, n_threads=1):
        self.hidden_size = hidden_size
        self.n_heads = n_heads
        self.dropout = dropout
        self.frame_stride = frame_stride
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    def _prepare(self, X, fitting):
        name = type(self).__name__
        sequences = _as_sequences(X, name)
        if self.frame_stride < 1 or (2 * self.hidden_size) % self.n_heads:
            raise NetworkInputError(
                f"{name}: frame_stride must be >= 1 and n_heads ({self.n_heads}) must divide "
                f"2 * hidden_size ({2 * self.hidden_size})"
            )
        n_features = sequences[0].shape[1]
        if fitting:
            self.n_features_in_ = n_features
            self.mean_, self.scale_ = _standardiser(np.vstack(sequences))
        elif n_features != self.n_features_in_:
            raise NetworkInputError(
                f"{name}: sequences have {n_features} features per frame, the model was "
                f"fitted on {self.n_features_in_}"
            )
        return [
            torch.from_numpy(
                _average_frames(_standardise(x, self.mean_, self.scale_), self.frame_stride)
            )
            for x in sequences
        ]

    def _batch(self, inputs, index):
        batch = [inputs[i] for i in index]
        lengths = torch.tensor([len(x) for x in batch])
        return pad_sequence(batch, batch_first=True), lengths

    def _build_network(self, n_classes):
        return BiLstmAttention(self.n_features_in_, n_classes, self.hidden_size, self.n_heads,
                               self.dropout)


# ---------------------------------------------------------------------------------------------
# Attention fusion of an audio and a video encoding (Mamieva et al.)
# ---------------------------------------------------------------------------------------------


class AttentionFusion(nn.Module):
    """Two dense encoders, attention weights over the two encodings, dense classifier.

    Parameters
    ----------
    blocks : tuple of int
        ``(n_audio, n_video)``: the first ``n_audio`` input columns are audio, the rest video.
    n_classes : int
        Number of output logits.
    encoding_size : int
        ``s``, the size of each modality encoding.
    attention_size : int
        Rows of the attention matrix W.
    hidden_units : int
        Width of the classifier's hidden layer.
    dropout : float
        Dropout in the encoders and the classifier.
    """

    def __init__(self, blocks, n_classes, encoding_size=32, attention_size=16, hidden_units=64,
                 dropout=0.2):
        super().__init__()
        self.n_audio = blocks[0]

        def encoder(n_inputs):
            return nn.Sequential(
                nn.Linear(n_inputs, encoding_size), nn.ReLU(), nn.Dropout(dropout)
            )

        self.speech_encoder = encoder(blocks[0])
        self.face_encoder = encoder(blocks[1])
        self.W = nn.Linear(encoding_size, attention_size, bias=False)
        self.w = nn.Linear(attention_size, 1, bias=False)
        self.classifier = nn.Sequential(
            nn.Linear(encoding_size, hidden_units),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_units, n_classes),
        )

    def fuse(self, x):
        """Fused encoding ``F [shape=(batch, s)]`` and weights ``omega [shape=(batch, 2)]``."""
        # 1. Encode each modality: a_speech, a_face in R^s, stacked as A in R^{s x 2}.
        a_speech = self.speech_encoder(x[:, : self.n_audio])
        a_face = self.face_encoder(x[:, self.n_audio :])
        A = torch.stack([a_speech, a_face], dim=2)
        # 2. Eq. 4: X = tanh(W A), shape (attention_size, 2) per sample.
        scores = torch.tanh(self.W(A.transpose(1, 2)))
        # 3. Eq. 5: omega = softmax(w^T X) in R^2.
        omega = torch.softmax(self.w(scores).squeeze(2), dim=1)
        # 4. Eq. 6: F = A omega^T.
        return (A @ omega.unsqueeze(2)).squeeze(2), omega

    def forward(self, x):
        """Logits ``[shape=(batch, n_classes)]`` for ``x [shape=(batch, n_audio + n_video)]``."""
        return self.classifier(self.fuse(x)[0])


class AttentionFusionClassifier(_TabularClassifier):
    """Attention-weighted fusion of an audio and a video encoding, then a dense classifier.

    X holds an audio block (its first ``blocks[0]`` columns) and a video block (the next
    ``blocks[1]``).  Each block passes through its own dense encoder (linear, ReLU) to
    ``a_speech, a_face in R^s``; with ``A = [a_speech, a_face] in R^{s x 2}``:

    - eq. 4: ``X = tanh(W A)``
    - eq. 5: ``omega = softmax(w^T X) in R^2``
    - eq. 6: ``F = A omega^T``

    and ``F`` feeds a dense ReLU layer and a softmax.  ``omega`` depends on the sample and is
    exposed by `modality_weights`.  The paper writes ``A = [a_face, a_speech]``; the columns
    here follow ``blocks`` (audio first), which changes nothing but the order of ``omega``.

    Parameters
    ----------
    blocks : tuple of int
        ``(n_audio_columns, n_video_columns)``; their sum must equal X's number of columns.
    encoding_size : int
        ``s``, the size of each modality encoding.
    attention_size : int
        Rows of W.
    hidden_units : int
        Width of the classifier's hidden layer.
    dropout : float
        Dropout in the encoders and the classifier.
    learning_rate, weight_decay : float
        Adam step size and L2 penalty.
    batch_size : int
        Samples per gradient step.
    max_epochs : int
        Upper bound on training epochs.
    validation_fraction : float
        Part of the training data held out for early stopping (0 disables it).
    patience : int
        Epochs without validation improvement before stopping.
    random_state : int, RandomState or None
        Seed for the validation split, initial weights, batch order and dropout.
    n_threads : int
        Torch threads used while fitting and predicting.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    n_features_in_ : int
    mean_, scale_ : np.ndarray [shape=(n_features,)]
    network_ : AttentionFusion
    n_epochs_ : int
    best_validation_loss_ : float

    References
    ----------
    Mamieva, D., Abdusalomov, A. B., Kutlimuratov, A., Muminov, B., Whangbo, T. K. (2023).
    "Multimodal emotion detection via attention-based fusion of extracted facial and speech
    features." Sensors 23(12), 5475; eqs. 4-6.
    """

    def __init__(self, blocks=None, encoding_size=32, attention_size=16, hidden_units=64,
                 dropout=0.2, learning_rate=3e-3, weight_decay=0.0, batch_size=32,
                 max_epochs=60, validation_fraction=0.15, patience=8, random_state=0,
                 n_threads=1):
        self.blocks = blocks
        self.encoding_size = encoding_size
        self.attention_size = attention_size
        self.hidden_units = hidden_units
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    def _check_feature_layout(self, n_features):
        blocks = self.blocks
        if blocks is None or len(blocks) != 2 or min(blocks) < 1 or sum(blocks) != n_features:
            raise NetworkInputError(
                f"AttentionFusionClassifier: blocks={blocks} must be two positive column "
                f"counts (n_audio, n_video) summing to X's {n_features} columns"
            )

    def _build_network(self, n_classes):
        return AttentionFusion(tuple(self.blocks), n_classes, self.encoding_size,
                               self.attention_size, self.hidden_units, self.dropout)

    def modality_weights(self, X):
        """Learned attention weights ``omega`` per sample.

        Parameters
        ----------
        X : np.ndarray [shape=(n, n_audio + n_video)]

        Returns
        -------
        np.ndarray [shape=(n, 2)]
            ``(audio, video)`` weights; each row is non-negative and sums to 1.
        """
        check_is_fitted(self, "network_")
        inputs = self._prepare(X, fitting=False)
        self.network_.eval()
        with torch_threads(self.n_threads), torch.no_grad():
            omega = self.network_.fuse(inputs)[1]
        return omega.numpy().astype(np.float64)
