"""A MobileNetV2-style CNN trained from scratch on spectrogram images, as a classifier and an encoder.

MM-EMOR (Adel et al. 2023) classifies mel + chroma images with a MobileNet.  ImageNet weights
cannot be downloaded here, and a 3.5 M-parameter MobileNetV2 is too large to train from
scratch on a few hundred clips on two CPU cores, so this is the same architecture scaled
down: a strided 3x3 stem, inverted residual blocks (1x1 expansion, 3x3 depthwise, linear
1x1 projection, a skip connection where shapes allow; Sandler et al. 2018), a 1x1 head
convolution and global average pooling, whose output is the image's encoding, then
dropout and a linear softmax layer.  Batch normalisation follows every convolution, ReLU6
every non-linear one, as in MobileNetV2.

The estimator reuses the training loop of :mod:`classify.networks` (Adam on cross-entropy,
early stopping on a stratified validation part of the training data, seeded in a forked
torch RNG on ``n_threads`` threads): a fit is reproducible for a given ``random_state``.
"""

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted
from torch import nn

from features.torch_threads import torch_threads

from .networks import NetworkInputError, _TorchClassifier

DEFAULT_BLOCKS = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 32, 2, 2), (4, 64, 2, 2))
"""Inverted residual stages ``(expansion t, output channels c, repeats n, first stride s)``,
MobileNetV2's table 2 notation; the paper's full network has seven stages up to 320 channels."""


def _conv_bn(in_channels, out_channels, kernel_size, stride=1, groups=1, activation=True):
    layers = [nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
              nn.BatchNorm2d(out_channels)]
    return nn.Sequential(*layers, nn.ReLU6()) if activation else nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    """1x1 expansion (ReLU6) -> 3x3 depthwise (ReLU6, stride) -> 1x1 linear projection, plus the
    input when stride is 1 and the channel count is unchanged.

    Parameters
    ----------
    in_channels, out_channels : int
    stride : {1, 2}
    expansion : int
        Hidden channels = ``expansion * in_channels`` (no expansion layer when 1).
    """

    def __init__(self, in_channels, out_channels, stride, expansion):
        super().__init__()
        hidden = in_channels * expansion
        layers = [_conv_bn(in_channels, hidden, 1)] if expansion != 1 else []
        layers += [_conv_bn(hidden, hidden, 3, stride, groups=hidden),
                   _conv_bn(hidden, out_channels, 1, activation=False)]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.block(x) if self.residual else self.block(x)


class MobileNet(nn.Module):
    """Stem -> inverted residual stages -> 1x1 head -> global average pool -> dropout -> linear.

    Parameters
    ----------
    in_channels : int
        Image channels (2: mel and chroma).
    n_classes : int
    blocks : sequence of (t, c, n, s)
        Inverted residual stages (:data:`DEFAULT_BLOCKS`).
    stem_channels : int
        Output channels of the stride-2 3x3 stem.
    encoding_size : int
        Channels of the 1x1 head convolution = length of the encoding.
    dropout : float
        Dropout before the linear layer.
    """

    def __init__(self, in_channels, n_classes, blocks=DEFAULT_BLOCKS, stem_channels=16, encoding_size=128,
                 dropout=0.2):
        super().__init__()
        layers, channels = [_conv_bn(in_channels, stem_channels, 3, 2)], stem_channels
        for expansion, out_channels, repeats, stride in blocks:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_channels, stride if i == 0 else 1, expansion))
                channels = out_channels
        layers += [_conv_bn(channels, encoding_size, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.encoder = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(encoding_size, n_classes))

    def forward(self, x):
        """Logits ``[shape=(batch, n_classes)]`` of images ``x [shape=(batch, c, h, w)]``."""
        return self.classifier(self.encoder(x))


def _as_images(X, estimator):
    """``X`` as a float64 array of images [shape=(n, c, h, w)], finite; a NetworkInputError if not."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 4 or 0 in X.shape:
        raise NetworkInputError(f"{estimator}: X must be images of shape (n, channels, height, width), "
                                f"got shape {X.shape}")
    if not np.isfinite(X).all():
        raise NetworkInputError(f"{estimator}: X has NaN or infinite values")
    return X


class MobileNetClassifier(_TorchClassifier):
    """A small MobileNetV2 trained from scratch on images; :meth:`transform` gives its encodings.

    Images are standardised per channel with the training mean and deviation.  Defaults fit
    2 x 64 x 128 spectrogram images (:mod:`features.images`): 86,520 parameters for 8 classes; an
    epoch over 500 images takes seconds on one core.

    Parameters
    ----------
    blocks : tuple of (t, c, n, s)
        Inverted residual stages.
    stem_channels : int
        Channels of the stem convolution.
    encoding_size : int
        Length of the encoding (channels of the head convolution).
    dropout : float
        Dropout before the output layer.
    learning_rate, weight_decay : float
        Adam step size and L2 penalty.
    batch_size : int
        Images per gradient step.
    max_epochs : int
        Upper bound on training epochs (MM-EMOR: at most 30).
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
    image_shape_ : tuple of int
        ``(channels, height, width)`` of the training images.
    mean_, scale_ : np.ndarray [shape=(channels,)]
    network_ : MobileNet
    n_epochs_ : int
    best_validation_loss_ : float

    References
    ----------
    Sandler, M., Howard, A., Zhu, M., Zhmoginov, A., Chen, L.-C. (2018). "MobileNetV2: inverted
    residuals and linear bottlenecks." CVPR.
    Adel, O., Fathalla, K. M., Abo ElFarag, A. (2023). "MM-EMOR: multi-modal emotion recognition
    of social media using concatenated deep learning networks." Big Data Cogn. Comput. 7, 164.
    """

    def __init__(self, blocks=DEFAULT_BLOCKS, stem_channels=16, encoding_size=128, dropout=0.2,
                 learning_rate=3e-3, weight_decay=0.0, batch_size=32, max_epochs=30,
                 validation_fraction=0.15, patience=5, random_state=0, n_threads=1):
        self.blocks = blocks
        self.stem_channels = stem_channels
        self.encoding_size = encoding_size
        self.dropout = dropout
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
        X = _as_images(X, name)
        if fitting:
            self.image_shape_ = X.shape[1:]
            self.mean_ = X.mean(axis=(0, 2, 3))
            scale = X.std(axis=(0, 2, 3))
            self.scale_ = np.where(scale > 0, scale, 1.0)
        elif X.shape[1:] != self.image_shape_:
            raise NetworkInputError(f"{name}: images of shape {X.shape[1:]}, the model was fitted on "
                                    f"{self.image_shape_}")
        shape = (1, -1, 1, 1)
        return torch.from_numpy(((X - self.mean_.reshape(shape)) / self.scale_.reshape(shape)).astype(np.float32))

    def _batch(self, inputs, index):
        return (inputs[index],)

    def _build_network(self, n_classes):
        return MobileNet(self.image_shape_[0], n_classes, tuple(tuple(b) for b in self.blocks),
                         self.stem_channels, self.encoding_size, self.dropout)

    def transform(self, X):
        """Encodings of images: the pooled head activations the output layer reads.

        Parameters
        ----------
        X : np.ndarray [shape=(n, channels, height, width)]

        Returns
        -------
        np.ndarray [shape=(n, encoding_size), dtype=float64]
        """
        check_is_fitted(self, "network_")
        inputs = self._prepare(X, fitting=False)
        self.network_.eval()
        with torch_threads(self.n_threads), torch.no_grad():
            return torch.cat([self.network_.encoder(inputs[start:start + 256])
                              for start in range(0, len(inputs), 256)]).numpy().astype(np.float64)
