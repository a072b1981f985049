"""OMSN-ER (Patil et al. 2024): BiLSTM encoders, dense residual fusion, self-attention CNN.

The network, `OmsnNetwork`, has three parts:

1. **Input layers.**  One BiLSTM encoder per modality over its frame sequence (audio frames,
   video HOG frames), each encoding projected to a 10 x 10 map (`SequenceEncoder`): the
   paper's "input layer 1" (audio) and "input layer 2" (video).
2. **MPDRF fusion** (`DenseResidualFusion`): the paper gives no equations, only the names of
   its parts, so each is built as the field builds it and documented there: bilateral
   channel-pixel weighting of the modality maps, a nested (UNet++-like) encoder-decoder of
   aggregated-residual down- and up-sampling blocks with dense skip connections from the
   input, and a residual transformer at the bottleneck.  Output: the fused 10 x 10 map.
3. **SMGCNN** (`SelfAttentionCnn`): down-sampling convolutions, a residual block with a
   SAGAN self-attention module (query and key embeddings of C/8 channels, a
   position-to-position softmax attention map, the result scaled by a learnable gamma that
   starts at 0 and added back), global average pooling and a dense softmax head.

The 3 x 3 and block convolutions are followed by group normalisation (4 groups; the paper
names no normalisation): unlike batch normalisation it has no running statistics, so
training on a few hundred clips in small batches is steady and a sample's output never
depends on its batch.

`OmsnClassifier` trains it end to end with the cross-entropy of the 8-way softmax.  The
paper trains with binary cross-entropy, which does not fit a single-label multi-class task
(it treats 8 mutually exclusive classes as 8 independent yes/no outputs); that is taken as a
slip.  Its learning rate is the one hyper-parameter the paper tunes, with the Mountain
Gazelle Optimiser: `mgo_tuned_omsn` does so inside the training speakers.

References
----------
Patil, Virupakshappa & Vijaya (2024), OMSN-ER: optimised multimodal self-attention network
for emotion recognition on RAVDESS (BiLSTM features, MPDRF-Net fusion, SMGCNN, MGO).
Zhou, Z., et al. (2018). UNet++: a nested U-Net architecture. DLMIA, LNCS 11045.
Xie, S., et al. (2017). Aggregated residual transformations for deep neural networks. CVPR.
Hu, J., Shen, L., & Sun, G. (2018). Squeeze-and-excitation networks. CVPR.
Zhang, H., Goodfellow, I., Metaxas, D., & Odena, A. (2019). Self-attention generative
adversarial networks. ICML.
"""

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from .networks import (
    NetworkInputError,
    _as_sequences,
    _average_frames,
    _reverse_within_lengths,
    _standardise,
    _standardiser,
    _TorchClassifier,
)
from .tuning import Hyperparameter, MountainGazelleSearchCV

__all__ = [
    "SequenceEncoder",
    "ChannelPixelWeighting",
    "DenseResidualFusion",
    "SelfAttention2d",
    "SelfAttentionCnn",
    "OmsnNetwork",
    "OmsnClassifier",
    "mgo_tuned_omsn",
]

MAP_SIDE = 10
"""Side of each modality's map (the paper's 10 x 10 input layers)."""

LEARNING_RATES = (1e-4, 1e-2)
"""Range of Adam's learning rate that `mgo_tuned_omsn` searches, on a log scale (paper: not stated)."""


class SequenceEncoder(nn.Module):
    """A BiLSTM over one modality's frames, pooled and projected to a ``(1, 10, 10)`` map.

    The BiLSTM's outputs ``[shape=(t, 2 hidden)]`` are averaged over the real (unpadded)
    frames, and a linear layer with tanh maps the average to 100 values read as a 10 x 10
    map.  (The paper says only that each modality becomes a 10 x 10 matrix.)

    Parameters
    ----------
    n_features : int
        Features per frame.
    hidden_size : int
        LSTM units per direction.
    """

    def __init__(self, n_features, hidden_size=32):
        super().__init__()
        self.forward_lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.backward_lstm = nn.LSTM(n_features, hidden_size, batch_first=True)
        self.project = nn.Sequential(nn.Linear(2 * hidden_size, MAP_SIDE * MAP_SIDE), nn.Tanh())

    def forward(self, x, lengths):
        """``x [shape=(batch, t_max, n_features)]`` zero-padded after ``lengths`` frames ->
        map ``[shape=(batch, 1, 10, 10)]``, independent of the padding."""
        mask = (torch.arange(x.shape[1])[None, :] < lengths[:, None]).unsqueeze(-1).to(x.dtype)
        backward = _reverse_within_lengths(self.backward_lstm(_reverse_within_lengths(x, lengths))[0], lengths)
        h = torch.cat([self.forward_lstm(x)[0], backward], dim=2)
        pooled = (h * mask).sum(dim=1) / lengths[:, None].to(x.dtype)
        return self.project(pooled).view(-1, 1, MAP_SIDE, MAP_SIDE)


class ChannelPixelWeighting(nn.Module):
    """Bilateral channel-pixel weighting (the paper's BCPW) of stacked modality maps.

    ``x [shape=(batch, C, H, W)]`` is weighted twice, by a sigmoid weight per channel from a
    squeeze-and-excitation bottleneck over its global average (Hu et al. 2018) and by a
    sigmoid weight per position from a 1 x 1 convolution across channels; the product
    ``x * w_channel * w_pixel`` is added back to ``x`` (residual), so a weighting that starts
    near 1/4 never erases a modality.

    Parameters
    ----------
    channels : int
        C.
    reduction : int
        Bottleneck ratio of the channel weighting (at least one unit).
    """

    def __init__(self, channels, reduction=4):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.channel = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(), nn.Linear(hidden, channels), nn.Sigmoid())
        self.pixel = nn.Sequential(nn.Conv2d(channels, 1, kernel_size=1), nn.Sigmoid())

    def forward(self, x):
        channel_weight = self.channel(x.mean(dim=(2, 3)))[:, :, None, None]
        return x + x * channel_weight * self.pixel(x)


class _AggregatedResidual(nn.Module):
    """ResNeXt block: ``relu(shortcut(x) + GN(grouped 3x3 conv(relu(GN(1x1 conv(x))))))``.

    The grouped convolution (``cardinality`` groups) runs at ``stride``; the shortcut is the
    identity when the shape is kept, else a strided 1 x 1 convolution.  GN is group
    normalisation (`_norm`).
    """

    def __init__(self, in_channels, out_channels, stride=1, cardinality=4):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel_size=1), _norm(out_channels), nn.ReLU(),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, stride=stride, padding=1, groups=cardinality),
            _norm(out_channels),
        )
        self.shortcut = (nn.Identity() if stride == 1 and in_channels == out_channels
                         else nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=stride))

    def forward(self, x):
        return F.relu(self.shortcut(x) + self.body(x))


class _ResidualTransformer(nn.Module):
    """One pre-norm transformer layer over the positions of a map, added back to the map."""

    def __init__(self, channels, n_heads=2):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(channels, n_heads, dim_feedforward=2 * channels, dropout=0.0,
                                                batch_first=True, norm_first=True)

    def forward(self, x):
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)  # (batch, H W, C); the layer is residual itself
        return self.layer(tokens).transpose(1, 2).reshape(batch, channels, height, width)


class DenseResidualFusion(nn.Module):
    """MPDRF-Net as built here: a nested encoder-decoder that fuses the modality maps.

    Node ``X[i, j]`` sits at scale ``i`` (10 x 10, 5 x 5, 3 x 3) after ``j`` decoder steps:

    - ``X[0, 0]``: the modality maps ``[shape=(batch, M, 10, 10)]`` after bilateral
      channel-pixel weighting (`ChannelPixelWeighting`) and a 3 x 3 convolution to
      ``widths[0]`` channels (with group normalisation and ReLU);
    - encoder ("DAR"): ``X[i, 0] = AggRes_stride2(X[i-1, 0])``, aggregated-residual blocks
      that halve the side (rounding up); the bottleneck ``X[2, 0]`` then passes a residual
      transformer layer for long-range context over its 9 positions;
    - decoder (aggregated-residual up-sampling): ``X[i, j] = AggRes(concat(X[i, 0], ...,
      X[i, j-1], up(X[i+1, j-1])))``, ``up`` bilinear to the finer side; every node sees all
      earlier nodes of its scale, so the input features reach every decoder stage through
      dense skip connections (UNet++, Zhou et al. 2018);
    - output: ``X[0, 2]`` plus ``X[0, 0]`` (a long residual), ``[shape=(batch, widths[0], 10, 10)]``.

    Parameters
    ----------
    n_modalities : int
        M, the number of input maps.
    widths : tuple of int
        Channels at the three scales; each divisible by 4 (the blocks' cardinality).
    """

    def __init__(self, n_modalities, widths=(16, 32, 64)):
        super().__init__()
        w0, w1, w2 = widths
        self.weighting = ChannelPixelWeighting(n_modalities, reduction=1)
        self.stem = nn.Sequential(nn.Conv2d(n_modalities, w0, kernel_size=3, padding=1), _norm(w0), nn.ReLU())
        self.down1 = _AggregatedResidual(w0, w1, stride=2)
        self.down2 = _AggregatedResidual(w1, w2, stride=2)
        self.bottleneck = _ResidualTransformer(w2)
        self.node01 = _AggregatedResidual(w0 + w1, w0)
        self.node11 = _AggregatedResidual(w1 + w2, w1)
        self.node02 = _AggregatedResidual(2 * w0 + w1, w0)

    def forward(self, maps):
        """Fused map ``[shape=(batch, widths[0], 10, 10)]`` from ``maps [shape=(batch, M, 10, 10)]``."""
        x00 = self.stem(self.weighting(maps))
        x10 = self.down1(x00)
        x20 = self.bottleneck(self.down2(x10))
        x01 = self.node01(torch.cat([x00, _up(x10, x00)], dim=1))
        x11 = self.node11(torch.cat([x10, _up(x20, x10)], dim=1))
        x02 = self.node02(torch.cat([x00, x01, _up(x11, x00)], dim=1))
        return x00 + x02


def _norm(channels):
    """Group normalisation of ``channels`` (divisible by 4) in 4 groups."""
    return nn.GroupNorm(4, channels)


def _up(x, like):
    """``x`` resized bilinearly to the height and width of ``like``."""
    return F.interpolate(x, size=like.shape[2:], mode="bilinear", align_corners=False)


class SelfAttention2d(nn.Module):
    """SAGAN self-attention over the positions of a feature map (Zhang et al. 2019).

    With ``f = W_f x``, ``g = W_g x`` (1 x 1 convolutions to ``C / reduction`` channels) and
    ``h = W_h x`` (C channels), the attention map is ``beta[j, i] = softmax_i(f_i . g_j)``
    over the N = H W positions, the output ``o_j = sum_i beta[j, i] h_i``, and the block
    returns ``y = gamma * o + x`` with a learnable scalar gamma initialised at 0, so the
    block starts as the identity and learns how much non-local evidence to add.

    Parameters
    ----------
    channels : int
        C.
    reduction : int
        Ratio of C to the query and key channels (SAGAN: 8).
    """

    def __init__(self, channels, reduction=8):
        super().__init__()
        inner = max(1, channels // reduction)
        self.query = nn.Conv2d(channels, inner, kernel_size=1)
        self.key = nn.Conv2d(channels, inner, kernel_size=1)
        self.value = nn.Conv2d(channels, channels, kernel_size=1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def attention(self, x):
        """The attention map ``[shape=(batch, N, N)]``, rows (outputs j) summing to 1."""
        f = self.query(x).flatten(2)  # (batch, C', N)
        g = self.key(x).flatten(2)
        return torch.softmax(g.transpose(1, 2) @ f, dim=2)

    def forward(self, x):
        batch, channels, height, width = x.shape
        o = self.value(x).flatten(2) @ self.attention(x).transpose(1, 2)  # (batch, C, N)
        return self.gamma * o.view(batch, channels, height, width) + x


class SelfAttentionCnn(nn.Module):
    """SMGCNN: down-sampling convolutions, a residual block with self-attention, dense softmax.

    ``conv 3x3 -> GN -> ReLU -> conv 3x3 stride 2 -> GN -> ReLU`` (10 x 10 -> 5 x 5), then a
    residual block ``ReLU(x + GN(conv(ReLU(GN(conv(x))))))`` followed by `SelfAttention2d`,
    then global average pooling, dropout and a linear layer to the class logits (softmax in
    the loss).  GN is group normalisation in 4 groups.

    Parameters
    ----------
    in_channels : int
        Channels of the fused map.
    n_classes : int
    channels : int
        Width of the convolutions.
    dropout : float
        Dropout before the dense head.
    """

    def __init__(self, in_channels, n_classes, channels=32, dropout=0.2):
        super().__init__()
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel_size=3, padding=1), _norm(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, stride=2, padding=1), _norm(channels), nn.ReLU(),
        )
        self.residual = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), _norm(channels), nn.ReLU(),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1), _norm(channels),
        )
        self.attention = SelfAttention2d(channels)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, n_classes))

    def forward(self, x):
        x = self.downsample(x)
        x = self.attention(F.relu(x + self.residual(x)))
        return self.head(x.mean(dim=(2, 3)))


class OmsnNetwork(nn.Module):
    """Per-modality BiLSTM encoders -> dense residual fusion -> self-attention CNN.

    Parameters
    ----------
    n_features : tuple of int
        Features per frame of each modality (one or two modalities).
    n_classes : int
    hidden_size : int
        LSTM units per direction of each encoder.
    fusion_widths : tuple of int
        Channels of the fusion network's three scales.
    cnn_channels : int
        Width of the self-attention CNN.
    dropout : float
        Dropout before the dense head.
    """

    def __init__(self, n_features, n_classes, hidden_size=32, fusion_widths=(16, 32, 64), cnn_channels=32,
                 dropout=0.2):
        super().__init__()
        self.encoders = nn.ModuleList(SequenceEncoder(d, hidden_size) for d in n_features)
        self.fusion = DenseResidualFusion(len(n_features), tuple(fusion_widths))
        self.classifier = SelfAttentionCnn(fusion_widths[0], n_classes, cnn_channels, dropout)

    def maps(self, *inputs):
        """The modality maps ``[shape=(batch, M, 10, 10)]`` from ``x_1, lengths_1, x_2, lengths_2``."""
        return torch.cat([encoder(x, lengths) for encoder, x, lengths
                          in zip(self.encoders, inputs[::2], inputs[1::2])], dim=1)

    def forward(self, *inputs):
        """Logits ``[shape=(batch, n_classes)]`` from each modality's padded frames and lengths."""
        return self.classifier(self.fusion(self.maps(*inputs)))


class OmsnClassifier(_TorchClassifier):
    """OMSN-ER as a scikit-learn classifier over one or two modalities' frame sequences.

    Each sample of ``X`` is either one sequence ``[shape=(t, d)]`` or a tuple of one sequence
    per modality, e.g. ``(audio [shape=(t_a, d_a)], video [shape=(t_v, d_v)])``, each on its
    own clock and of its own length.  With ``blocks=(d_a, d_v)`` a single sequence whose
    frames hold both modalities' columns side by side (as emofuse's fused sequences do) is
    split into the two.  Per modality, frames are standardised with the training mean and
    deviation (NaN -> training mean, e.g. a clip without a face), each run of
    ``frame_stride`` frames is averaged into one step, and batches are zero-padded with
    their lengths: a sample's probabilities do not depend on what it is batched with.

    Training: Adam on the cross-entropy of the softmax (the paper's binary cross-entropy is
    a slip for this single-label task), early stopping on a stratified validation part, as
    the other emofuse networks (``classify.networks``).  With one modality the fusion network
    weights and refines a single map (the audio branch of the recipe).

    Parameters
    ----------
    blocks : tuple of int or None
        Columns of each modality in a single-sequence sample; None: each sample is one
        modality's sequence or a tuple of sequences.
    hidden_size : int
        LSTM units per direction of each encoder (paper: not stated).
    fusion_widths : tuple of int
        Channels of the fusion network at 10 x 10, 5 x 5 and 3 x 3; divisible by 4.
    cnn_channels : int
        Width of the self-attention CNN; a multiple of 4.
    dropout : float
        Dropout before the dense head.
    frame_stride : int
        Frames averaged into one step (4: 100 frames/s audio -> 25 steps/s).
    learning_rate, weight_decay : float
        Adam step size (the value the paper tunes with MGO) and L2 penalty.
    batch_size : int
    max_epochs : int
        Upper bound on epochs (the paper: 200).
    validation_fraction : float
        Part of the training data held out for early stopping (0 disables it).
    patience : int
        Epochs without validation improvement before stopping.
    random_state : int, RandomState or None
        Seed of the validation split, initial weights, batch order and dropout.
    n_threads : int
        Torch threads used while fitting and predicting.

    Attributes
    ----------
    classes_ : np.ndarray [shape=(n_classes,)]
    n_features_in_ : tuple of int
        Features per frame of each modality.
    means_, scales_ : list of np.ndarray
        Per-modality training mean and standard deviation of every feature.
    network_ : OmsnNetwork
    n_parameters_ : int
        Trainable parameters of the network.
    n_epochs_ : int
    best_validation_loss_ : float
    """

    def __init__(self, blocks=None, hidden_size=32, fusion_widths=(16, 32, 64), cnn_channels=32, dropout=0.2,
                 frame_stride=4, learning_rate=1e-3, weight_decay=0.0, batch_size=32, max_epochs=60,
                 validation_fraction=0.15, patience=8, random_state=0, n_threads=1):
        self.blocks = blocks
        self.hidden_size = hidden_size
        self.fusion_widths = fusion_widths
        self.cnn_channels = cnn_channels
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
        widths = tuple(self.fusion_widths) + (self.cnn_channels,)
        if self.frame_stride < 1 or len(widths) != 4 or any(w < 4 or w % 4 for w in widths):
            raise NetworkInputError(
                f"{name}: need frame_stride >= 1, three fusion_widths and cnn_channels, each a positive "
                f"multiple of 4 (group normalisation), got {self.frame_stride}, {self.fusion_widths}, "
                f"{self.cnn_channels}"
            )
        modalities = [_as_sequences(sequences, name) for sequences in self._modalities(X)]
        n_features = tuple(sequences[0].shape[1] for sequences in modalities)
        if fitting:
            self.n_features_in_ = n_features
            statistics = [_standardiser(np.vstack(sequences)) for sequences in modalities]
            self.means_, self.scales_ = [m for m, _ in statistics], [s for _, s in statistics]
        elif n_features != self.n_features_in_:
            raise NetworkInputError(
                f"{name}: the modalities have {n_features} features per frame, the model was fitted on "
                f"{self.n_features_in_}"
            )
        return list(zip(*[
            [torch.from_numpy(_average_frames(_standardise(x, mean, scale), self.frame_stride)) for x in sequences]
            for sequences, mean, scale in zip(modalities, self.means_, self.scales_)
        ]))

    def _modalities(self, X):
        """One list of sequences per modality, from tuples, or from columns split by ``blocks``."""
        name = type(self).__name__
        samples = list(X)
        if not samples:
            raise NetworkInputError(f"{name}: X is empty (no sequences)")
        if isinstance(samples[0], tuple):
            if self.blocks is not None:
                raise NetworkInputError(f"{name}: give either per-modality tuples or blocks=, not both")
            n_modalities = len(samples[0])
            if not 1 <= n_modalities <= 2 or any(not isinstance(s, tuple) or len(s) != n_modalities for s in samples):
                raise NetworkInputError(
                    f"{name}: every sample must be a tuple of the same 1 or 2 modality sequences"
                )
            return [[s[m] for s in samples] for m in range(n_modalities)]
        if self.blocks is None:
            return [samples]
        blocks = tuple(self.blocks)
        sequences = _as_sequences(samples, name)
        if len(blocks) != 2 or min(blocks) < 1 or sum(blocks) != sequences[0].shape[1]:
            raise NetworkInputError(
                f"{name}: blocks={blocks} must be two positive column counts summing to the "
                f"{sequences[0].shape[1]} features per frame"
            )
        return [[x[:, : blocks[0]] for x in sequences], [x[:, blocks[0] :] for x in sequences]]

    def _batch(self, inputs, index):
        tensors = []
        for modality in zip(*(inputs[i] for i in index)):
            tensors += [pad_sequence(list(modality), batch_first=True), torch.tensor([len(x) for x in modality])]
        return tensors

    def _build_network(self, n_classes):
        network = OmsnNetwork(self.n_features_in_, n_classes, self.hidden_size, self.fusion_widths,
                              self.cnn_channels, self.dropout)
        self.n_parameters_ = sum(p.numel() for p in network.parameters() if p.requires_grad)
        return network


def mgo_tuned_omsn(random_state=0, *, max_evaluations=15, population=3, n_splits=2, **params):
    """`OmsnClassifier` whose learning rate the Mountain Gazelle Optimiser picks per fold.

    ``fit(X, y, groups=speakers)`` searches ``LEARNING_RATES`` on a log scale; each candidate
    is scored by speaker-grouped inner cross-validation on the training speakers only, and
    the chosen rate (``best_params_``) is refitted on all of them.  The paper's budget, a
    herd of 50 for 100 iterations (about 20,000 trainings), is far beyond two CPU cores: the
    default herd of 3 for one iteration costs 15 candidates x 2 inner folds = 30 trainings,
    plus the refit, per outer fold.

    Parameters
    ----------
    random_state : int
        Seed of the network and of the optimiser.
    max_evaluations, population, n_splits : int
        MGO's budget and herd, and the inner folds (``classify.tuning.tune_hyperparameters``).
    **params
        Other `OmsnClassifier` parameters.

    Returns
    -------
    classify.tuning.MountainGazelleSearchCV
    """
    return MountainGazelleSearchCV(
        OmsnClassifier(random_state=random_state, **params),
        [Hyperparameter("learning_rate", *LEARNING_RATES, "log")],
        n_splits=n_splits, max_evaluations=max_evaluations, population=population, random_state=random_state,
    )
