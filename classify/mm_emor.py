"""MM-EMOR's head: a spectrogram-image branch and a text branch, concatenated, dense, softmax.

Adel, Fathalla & Abo ElFarag (2023) encode the mel + chroma image with a MobileNet and the
transcript with RoBERTa-base (global average pooling over its token states), concatenate
the two, and classify with a dense ReLU layer under a weight penalty, dropout 0.3 and a
softmax, trained with Adam for at most 30 epochs, keeping "the best model reached".

Here the image branch is :class:`classify.mobilenet.MobileNet`'s encoder, trained from
scratch with the head; the text branch takes a precomputed sentence embedding (the
``text`` feature family: mean-pooled all-MiniLM-L6-v2, since RoBERTa's weights cannot be
downloaded here) and keeps the encoder frozen.  Where the paper is silent: 128 dense
units, an L2 penalty of 1e-3 on the dense layer's weights only (Keras' ``kernel_regularizer``,
added to its gradient), learning rate 1e-3.  The best epoch is the one with the lowest loss
on a stratified validation part of the training data, i.e. of the training speakers only
(the paper's "best model reached" may have looked at the test fold).
"""

import numpy as np
import torch
from torch import nn

from .mobilenet import DEFAULT_BLOCKS, MobileNet, _as_images
from .networks import NetworkInputError, _standardise, _standardiser, _TorchClassifier


class MmEmor(nn.Module):
    """Image encoder and/or text vector -> concatenation -> dense ReLU -> dropout -> linear.

    Parameters
    ----------
    image_channels : int or None
        Channels of the images; None: no image branch.
    text_size : int
        Length of the text vector; 0: no text branch.
    n_classes : int
    dense_units : int
    dropout : float
        After the dense layer (paper: 0.3).
    penalty : float
        L2 penalty on the dense layer's weights: ``2 * penalty * W`` is added to their gradient
        while training, as if ``penalty * ||W||^2`` were added to the loss.
    image_options : dict
        ``blocks``, ``stem_channels``, ``encoding_size`` of the MobileNet encoder.
    """

    def __init__(self, image_channels, text_size, n_classes, dense_units=128, dropout=0.3, penalty=1e-3,
                 **image_options):
        super().__init__()
        self.image_encoder = (MobileNet(image_channels, n_classes, **image_options).encoder
                              if image_channels else None)
        width = (image_options.get("encoding_size", 128) if image_channels else 0) + text_size
        self.dense = nn.Linear(width, dense_units)
        self.head = nn.Sequential(nn.ReLU(), nn.Dropout(dropout), nn.Linear(dense_units, n_classes))
        self.penalty = penalty
        self._penalty_hook = self.dense.weight.register_hook(self._penalise) if penalty else None

    def _penalise(self, grad):
        return grad + 2 * self.penalty * self.dense.weight.detach()

    def release_penalty(self):
        """Drop the training-time gradient hook (leaves a plain, picklable module)."""
        if self._penalty_hook is not None:
            self._penalty_hook.remove()
            self._penalty_hook = None

    def forward(self, images, texts):
        """Logits ``[shape=(batch, n_classes)]``; ``images [shape=(batch, c, h, w)]`` or an empty
        tensor without an image branch, ``texts [shape=(batch, text_size)]``."""
        parts = ([self.image_encoder(images)] if self.image_encoder is not None else []) + [texts]
        return self.head(self.dense(torch.cat(parts, dim=1)))


class _Pairs:
    """Standardised images and text vectors of the same samples, indexable together."""

    def __init__(self, images, texts):
        self.images, self.texts = images, texts

    def __len__(self):
        return len(self.texts)


class MmEmorClassifier(_TorchClassifier):
    """MM-EMOR's concatenation head over spectrogram images and sentence embeddings.

    ``X`` is a pair ``(images, texts)``: images ``[shape=(n, c, h, w)]`` (or None for a
    text-only model, as MM-EMOR on TweetEval) and text vectors ``[shape=(n, d)]`` (or None
    for an image-only model).  Images are standardised per channel, text vectors per column
    (NaN, a clip without text, becomes the training mean), both with training statistics.

    Parameters
    ----------
    branches : tuple of {"image", "text"}
        The parts of ``X`` the model uses; the others are ignored (``("image",)`` and
        ``("text",)`` are the single-branch ablations of the full model).
    dense_units : int
        Units of the dense ReLU layer (paper: not stated).
    dropout : float
        Dropout after it (paper: 0.3).
    penalty : float
        L2 penalty on the dense layer's weights (paper: a regulariser, type and strength not stated).
    blocks, stem_channels, encoding_size
        The MobileNet image encoder (:class:`classify.mobilenet.MobileNetClassifier`).
    learning_rate : float
        Adam step size (paper: not stated).
    batch_size : int
    max_epochs : int
        Epochs trained (paper: at most 30).
    validation_fraction : float
        Part of the training data whose loss picks the best epoch.
    patience : int
        Epochs without improvement before stopping (default: never stop early, train all
        ``max_epochs`` and keep the best).
    random_state : int, RandomState or None
    n_threads : int

    Attributes
    ----------
    classes_, network_, n_epochs_, best_validation_loss_
        As the other network classifiers.
    image_shape_ : tuple or None
    text_size_ : int
    """

    def __init__(self, branches=("image", "text"), dense_units=128, dropout=0.3, penalty=1e-3, blocks=DEFAULT_BLOCKS, stem_channels=16,
                 encoding_size=128, learning_rate=1e-3, batch_size=32, max_epochs=30,
                 validation_fraction=0.15, patience=30, random_state=0, n_threads=1):
        self.branches = branches
        self.dense_units = dense_units
        self.dropout = dropout
        self.penalty = penalty
        self.blocks = blocks
        self.stem_channels = stem_channels
        self.encoding_size = encoding_size
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.n_threads = n_threads

    # Adam's own L2 over every weight stays off: the penalty is the dense layer's only.
    weight_decay = 0.0

    def fit(self, X, y):
        """Train on ``X = (images, texts)`` and labels ``y``."""
        super().fit(X, y)
        self.network_.release_penalty()
        return self

    def _prepare(self, X, fitting):
        name = type(self).__name__
        try:
            images, texts = X
        except (TypeError, ValueError) as err:
            raise NetworkInputError(f"{name}: X must be a pair (images or None, text vectors or None)") from err
        unknown = set(self.branches) - {"image", "text"}
        if unknown or not self.branches:
            raise NetworkInputError(f"{name}: branches must be some of image, text; got {self.branches}")
        images = images if "image" in self.branches else None
        texts = texts if "text" in self.branches else None
        if images is None and texts is None:
            raise NetworkInputError(f"{name}: X has neither images nor text vectors for the branches "
                                    f"{', '.join(self.branches)}")
        images = None if images is None else _as_images(images, name)
        texts = None if texts is None else np.asarray(texts, dtype=np.float64)
        if texts is not None and (texts.ndim != 2 or np.isinf(texts).any()):
            raise NetworkInputError(f"{name}: text vectors must be a finite (n, d) array, got shape {texts.shape}")
        n = len(images) if images is not None else len(texts)
        if images is not None and texts is not None and len(texts) != n:
            raise NetworkInputError(f"{name}: {n} images but {len(texts)} text vectors")
        if fitting:
            self.image_shape_ = None if images is None else images.shape[1:]
            self.text_size_ = 0 if texts is None else texts.shape[1]
            if images is not None:
                scale = images.std(axis=(0, 2, 3))
                self.image_mean_, self.image_scale_ = images.mean(axis=(0, 2, 3)), np.where(scale > 0, scale, 1.0)
            if texts is not None:
                self.text_mean_, self.text_scale_ = _standardiser(texts)
        elif (None if images is None else images.shape[1:]) != self.image_shape_ or \
                (0 if texts is None else texts.shape[1]) != self.text_size_:
            raise NetworkInputError(f"{name}: inputs do not match the fitted images {self.image_shape_} "
                                    f"and text vectors of {self.text_size_}")
        shape = (1, -1, 1, 1)
        image_tensor = torch.zeros((n, 0)) if images is None else torch.from_numpy(
            ((images - self.image_mean_.reshape(shape)) / self.image_scale_.reshape(shape)).astype(np.float32))
        text_tensor = torch.zeros((n, 0)) if texts is None else torch.from_numpy(
            _standardise(texts, self.text_mean_, self.text_scale_))
        return _Pairs(image_tensor, text_tensor)

    def _batch(self, inputs, index):
        return inputs.images[index], inputs.texts[index]

    def _build_network(self, n_classes):
        channels = None if self.image_shape_ is None else self.image_shape_[0]
        return MmEmor(channels, self.text_size_, n_classes, self.dense_units, self.dropout, self.penalty,
                      blocks=tuple(tuple(b) for b in self.blocks), stem_channels=self.stem_channels,
                      encoding_size=self.encoding_size)
